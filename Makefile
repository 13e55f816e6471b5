# rmq: the two commands a new machine needs are `make demo` and `make test` (see README).
# Cargo builds the library; this file drives what cargo does not: the C programs, the Python and
# Go suites, the local RocketMQ cluster, and the checks.

CARGO      ?= cargo
CC         ?= cc
LIB        := target/release/librmq.a
LDLIBS     := -lpthread -ldl -lm
CSTRICT    := -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -Iinclude
ASAN       := -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
OUT        := target/c

.PHONY: all build test demo lint fmt-check clippy header-check symbols-check go-vet \
        c-programs c-test c-test-asan bench bench-compare bench-go bench-go-v2 bench-idle clean config-doc install go-lib \
        packaging-test fuzz fuzz-short fuzz-seeds test-misuse test-misuse-valgrind
.PHONY: test-compat test-compat-short test-faults test-faults-short soak bench-responder

all: build c-programs

build:
	$(CARGO) build --release

# The header is rewritten by build.rs; the committed one must match what the build generates.
header-check: build
	scripts/check-header.sh

symbols-check: build
	scripts/check-symbols.sh

fmt-check:
	$(CARGO) fmt --check

clippy:
	$(CARGO) clippy --release --all-targets -- -D warnings

go-vet: go-lib
	cd bindings/go && go vet ./...
	cd examples/go && go vet ./...
	cd benches/go && go vet ./...

lint: fmt-check clippy header-check symbols-check go-vet

$(OUT):
	mkdir -p $(OUT)

$(OUT)/test_rmq: tests/c/*.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) -O1 tests/c/test_rmq.c tests/c/test_second_unit.c tests/c/test_input.c tests/c/test_routing.c tests/c/test_payload.c tests/c/test_order.c tests/c/test_log.c tests/c/test_async.c $(LIB) $(LDLIBS) -o $@

$(OUT)/test_rmq_asan: tests/c/*.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) $(ASAN) tests/c/test_rmq.c tests/c/test_second_unit.c tests/c/test_input.c tests/c/test_routing.c tests/c/test_payload.c tests/c/test_order.c tests/c/test_log.c tests/c/test_async.c $(LIB) $(LDLIBS) -o $@

# Test programs of one source file each; a new one only needs its name here.
C_STANDALONE := test_faults test_consumer test_consumer_group test_consumer_sigkill test_poll \
                test_transaction test_request test_orderly test_security \
                test_lite_pull test_consumer_broadcast test_pop test_metrics test_completion_queue \
                test_trace_kinds

$(OUT)/test_%: tests/c/test_%.c tests/c/check.h include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) -O1 $< $(LIB) $(LDLIBS) -o $@

$(OUT)/test_%_asan: tests/c/test_%.c tests/c/check.h include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) $(ASAN) $< $(LIB) $(LDLIBS) -o $@

$(OUT)/producer: examples/c/producer.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) -O2 $< $(LIB) $(LDLIBS) -o $@

$(OUT)/consumer: examples/c/consumer.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) -O2 $< $(LIB) $(LDLIBS) -o $@

$(OUT)/transaction: examples/c/transaction.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) -O2 $< $(LIB) $(LDLIBS) -o $@

$(OUT)/request: examples/c/request.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) -O2 $< $(LIB) $(LDLIBS) -o $@

$(OUT)/sync_send: benches/c/sync_send.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) -O2 $< $(LIB) $(LDLIBS) -o $@

$(OUT)/rmq_bench: benches/c/rmq_bench.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) -O2 $< $(LIB) $(LDLIBS) -o $@

$(OUT)/idle: benches/c/idle.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) -O2 $< $(LIB) $(LDLIBS) -o $@

c-programs: build $(OUT)/test_rmq $(OUT)/test_rmq_asan \
            $(foreach t,$(C_STANDALONE),$(OUT)/$(t) $(OUT)/$(t)_asan) \
            $(OUT)/producer $(OUT)/consumer $(OUT)/transaction $(OUT)/request \
            $(OUT)/sync_send $(OUT)/rmq_bench $(OUT)/idle

# These two need RMQ_NAMESRV (make test sets it).
c-test: build $(OUT)/test_rmq $(foreach t,$(C_STANDALONE),$(OUT)/$(t))
	$(OUT)/test_rmq
	set -e; for t in $(C_STANDALONE); do $(OUT)/$$t; done

c-test-asan: build $(OUT)/test_rmq_asan $(foreach t,$(C_STANDALONE),$(OUT)/$(t)_asan)
	ASAN_OPTIONS=detect_leaks=1 $(OUT)/test_rmq_asan
	set -e; for t in $(C_STANDALONE); do ASAN_OPTIONS=detect_leaks=1 $(OUT)/$${t}_asan; done

# The C ABI misuse suite (tests/c/misuse), each case in a process of its own; needs RMQ_NAMESRV.
# The NULL-pointer calls are generated from the header at build time.
MISUSE_DEPS := tests/c/misuse/misuse.c tests/c/misuse/fixtures.h tests/c/check.h include/rmq.h \
               $(OUT)/misuse_null.c $(LIB)
MISUSE_SRCS := tests/c/misuse/misuse.c $(OUT)/misuse_null.c

$(OUT)/misuse_null.c: include/rmq.h scripts/gen-misuse-null.py | $(OUT)
	scripts/gen-misuse-null.py include/rmq.h $@

$(OUT)/misuse_asan: $(MISUSE_DEPS)
	$(CC) $(CSTRICT) -Itests/c -Itests/c/misuse $(ASAN) $(MISUSE_SRCS) $(LIB) $(LDLIBS) -o $@

$(OUT)/misuse: $(MISUSE_DEPS)
	$(CC) $(CSTRICT) -Itests/c -Itests/c/misuse -g -O1 $(MISUSE_SRCS) $(LIB) $(LDLIBS) -o $@

test-misuse: build $(OUT)/misuse_asan
	scripts/test-misuse.sh asan $(OUT)/misuse_asan

test-misuse-valgrind: build $(OUT)/misuse
	scripts/test-misuse.sh valgrind $(OUT)/misuse

# Every test: lint, then all suites against a real cluster that the runner starts and stops.
test: lint c-programs
	scripts/run-tests.sh

# The single-cluster real-broker suites (Rust, C, Python) against RocketMQ 4.9.7, 5.3.3 and the
# newest 5.x, one cluster per version started in parallel; not part of `test` (it is long). The
# short form: the Rust producer and consumer suites against 4.9.7 only.
test-compat:
	scripts/test-compat.sh

test-compat-short:
	RMQ_COMPAT_VERSIONS=4.9.7 RMQ_COMPAT_SUITES=rust RMQ_COMPAT_RUST="broker_producer broker_consumer" \
	  scripts/test-compat.sh

# The fault table (examples/fault_table.rs) against a two-name-server, two-broker cluster and a
# master/slave pair that scripts/test-faults.sh starts and stops: brokers and name servers
# killed, frozen and restarted, a consumer killed, a master killed; each row counts what was
# stored or consumed and reports lost and duplicated messages. FAULTS_SCALE multiplies the
# message counts (1: 100 000 sync sends in the broker-kill row); test-faults-short is the CI
# form (0.05).
test-faults:
	scripts/test-faults.sh

test-faults-short:
	FAULTS_SCALE=0.05 scripts/test-faults.sh

# Producers and a consumer under load for SOAK_SECONDS (600) while broker-a and broker-b restart
# in turn every SOAK_RESTART_SECONDS (120); prints RSS, threads, fds, sent, consumed and
# duplicated each minute, and fails if a message sent OK was never consumed.
soak:
	scripts/test-faults.sh --soak

# docs/configuration.md and the README key table from the key table in src/config.rs (tests keep them equal).
config-doc:
	$(CARGO) run --release --example gen_config_doc

# A real local cluster, then the C, Python and Go examples end to end.
demo: go-lib $(OUT)/producer $(OUT)/consumer $(OUT)/transaction $(OUT)/request
	scripts/demo.sh

# 10 000 sync sends of 1 KiB from C against a local cluster (starts one if needed).
bench: build $(OUT)/sync_send
	scripts/bench.sh

# The client's cost alone: rmq_bench (sync, async 256 in flight, batches of 16 and 64; then the
# Python and Go sync and async rows) against
# a do-nothing loopback responder (examples/responder.rs); no cluster needed.
bench-responder: build $(OUT)/rmq_bench bench-go
	$(CARGO) build --release --example responder
	scripts/bench-responder.sh

# rmq (C, Python, Go) against the Java client 5.3.3 and the Apache Go client v2 on one broker,
# interleaved rounds, written to docs/benchmarks.md with PNG plots (matplotlib, installed into a
# private virtualenv under target/) and callgrind counts. Uses the cluster RMQ_NAMESRV names, else
# starts one. BENCH_QUICK=1 for a short run; the other knobs are in the script's header.
BENCH_VENV := target/bench-venv
bench-compare: build $(OUT)/rmq_bench bench-go bench-go-v2 $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python scripts/bench-compare.py

$(BENCH_VENV)/.installed:
	python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q matplotlib==3.11.2
	touch $@

# RSS, threads and wake-ups of an idle producer plus push consumer (IDLE_SECONDS, 60 by
# default) against the cluster RMQ_NAMESRV names.
bench-idle: build $(OUT)/idle
	$(OUT)/idle "$(RMQ_NAMESRV)" RmqIdleTopic $(or $(IDLE_SECONDS),60)

# The Go version of the benchmark tool (benches/go), linked with the module's static library.
bench-go: go-lib
	cd benches/go && go build -o ../../target/go/rmq_bench_go .

# The same workloads through the Apache Go client v2 (benches/go-v2, its own module), for the
# comparison.
bench-go-v2:
	cd benches/go-v2 && go vet . && go build -o ../../target/go/go_v2_bench .

# Fuzzing (fuzz/, cargo-fuzz on the nightly toolchain; both are installed on first use): the
# frame decoder, the JSON and binary headers, the route JSON, the stored-message decoder and the
# broker-request handlers. `make fuzz` runs each target for FUZZ_RUNS executions (10 million:
# 39 minutes for all six on 2 CPUs, from 85 s for frame to 35 min for json_header, whose inputs
# grow to 16 KiB; plus a first nightly build of 3 minutes); `make fuzz-short` for FUZZ_SECONDS
# each. FUZZ_JOBS targets run at once (one per CPU). A crash fails the run and leaves its input
# in fuzz/artifacts/.
FUZZ_RUNS    ?= 10000000
FUZZ_SECONDS ?= 45
fuzz:
	scripts/fuzz.sh runs $(FUZZ_RUNS)

fuzz-short:
	scripts/fuzz.sh time $(FUZZ_SECONDS)

# Re-captures the seed corpora (fuzz/seeds/) from a running cluster (RMQ_NAMESRV).
fuzz-seeds:
	$(CARGO) run --release --example capture_fuzz_seeds -- "$${RMQ_NAMESRV:?set RMQ_NAMESRV}" fuzz/seeds

# C and C++: header, librmq.so.X.Y.Z with its SONAME links, librmq.a, rmq.pc and the CMake
# package under PREFIX (DESTDIR stages it elsewhere).
PREFIX ?= /usr/local
LIBDIR ?= lib
install: build
	PREFIX="$(PREFIX)" LIBDIR="$(LIBDIR)" DESTDIR="$(DESTDIR)" scripts/install.sh

# Go: the static library inside the Go module (bindings/go/rmq/lib/<GOOS>_<GOARCH>/), so
# programs that require the module build with plain `go build`. Not committed (see .gitignore).
GO_LIB_DIR = bindings/go/rmq/lib/$(shell go env GOOS)_$(shell go env GOARCH)
go-lib: build
	mkdir -p $(GO_LIB_DIR)
	cp $(LIB) $(GO_LIB_DIR)/librmq.a.tmp
	strip --strip-debug $(GO_LIB_DIR)/librmq.a.tmp
	mv $(GO_LIB_DIR)/librmq.a.tmp $(GO_LIB_DIR)/librmq.a

# A new user's view (needs RMQ_NAMESRV; make test runs it): the header in C89..C++11, make
# install + pkg-config + CMake, the wheel in a fresh venv, a Go module outside the tree.
packaging-test: go-lib
	scripts/test-packaging.sh

clean:
	$(CARGO) clean
	rm -rf $(OUT) bindings/go/rmq/lib
