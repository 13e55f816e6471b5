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
        c-programs c-test c-test-asan bench clean config-doc install go-lib packaging-test

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

lint: fmt-check clippy header-check symbols-check go-vet

$(OUT):
	mkdir -p $(OUT)

$(OUT)/test_rmq: tests/c/*.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) -O1 tests/c/test_rmq.c tests/c/test_second_unit.c tests/c/test_input.c tests/c/test_routing.c tests/c/test_payload.c tests/c/test_order.c tests/c/test_log.c tests/c/test_async.c $(LIB) $(LDLIBS) -o $@

$(OUT)/test_rmq_asan: tests/c/*.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) $(ASAN) tests/c/test_rmq.c tests/c/test_second_unit.c tests/c/test_input.c tests/c/test_routing.c tests/c/test_payload.c tests/c/test_order.c tests/c/test_log.c tests/c/test_async.c $(LIB) $(LDLIBS) -o $@

$(OUT)/test_faults: tests/c/test_faults.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) -O1 $< $(LIB) $(LDLIBS) -o $@

$(OUT)/test_faults_asan: tests/c/test_faults.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) $(ASAN) $< $(LIB) $(LDLIBS) -o $@

$(OUT)/test_consumer: tests/c/test_consumer.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) -O1 $< $(LIB) $(LDLIBS) -o $@

$(OUT)/test_consumer_asan: tests/c/test_consumer.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) $(ASAN) $< $(LIB) $(LDLIBS) -o $@

$(OUT)/test_consumer_group: tests/c/test_consumer_group.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) -O1 $< $(LIB) $(LDLIBS) -o $@

$(OUT)/test_consumer_group_asan: tests/c/test_consumer_group.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) $(ASAN) $< $(LIB) $(LDLIBS) -o $@

$(OUT)/test_consumer_broadcast: tests/c/test_consumer_broadcast.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) -O1 $< $(LIB) $(LDLIBS) -o $@

$(OUT)/test_consumer_broadcast_asan: tests/c/test_consumer_broadcast.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) $(ASAN) $< $(LIB) $(LDLIBS) -o $@

$(OUT)/producer: examples/c/producer.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) -O2 $< $(LIB) $(LDLIBS) -o $@

$(OUT)/consumer: examples/c/consumer.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) -O2 $< $(LIB) $(LDLIBS) -o $@

$(OUT)/sync_send: benches/c/sync_send.c include/rmq.h $(LIB) | $(OUT)
	$(CC) $(CSTRICT) -O2 $< $(LIB) $(LDLIBS) -o $@

c-programs: build $(OUT)/test_rmq $(OUT)/test_rmq_asan $(OUT)/test_faults $(OUT)/test_faults_asan \
            $(OUT)/test_consumer $(OUT)/test_consumer_asan $(OUT)/test_consumer_group \
            $(OUT)/test_consumer_group_asan $(OUT)/test_consumer_broadcast \
            $(OUT)/test_consumer_broadcast_asan $(OUT)/producer $(OUT)/consumer \
            $(OUT)/sync_send

# These two need RMQ_NAMESRV (make test sets it).
c-test: build $(OUT)/test_rmq $(OUT)/test_faults $(OUT)/test_consumer $(OUT)/test_consumer_group \
        $(OUT)/test_consumer_broadcast
	$(OUT)/test_rmq
	$(OUT)/test_faults
	$(OUT)/test_consumer
	$(OUT)/test_consumer_group
	$(OUT)/test_consumer_broadcast

c-test-asan: build $(OUT)/test_rmq_asan $(OUT)/test_faults_asan $(OUT)/test_consumer_asan \
             $(OUT)/test_consumer_group_asan $(OUT)/test_consumer_broadcast_asan
	ASAN_OPTIONS=detect_leaks=1 $(OUT)/test_rmq_asan
	ASAN_OPTIONS=detect_leaks=1 $(OUT)/test_faults_asan
	ASAN_OPTIONS=detect_leaks=1 $(OUT)/test_consumer_asan
	ASAN_OPTIONS=detect_leaks=1 $(OUT)/test_consumer_group_asan
	ASAN_OPTIONS=detect_leaks=1 $(OUT)/test_consumer_broadcast_asan

# Every test: lint, then all suites against a real cluster that the runner starts and stops.
test: lint c-programs
	scripts/run-tests.sh

# docs/configuration.md from the key table in src/config.rs (a test keeps them equal).
config-doc:
	$(CARGO) run --release --example gen_config_doc

# A real local cluster, then the C, Python and Go examples end to end.
demo: go-lib $(OUT)/producer $(OUT)/consumer
	scripts/demo.sh

# 10 000 sync sends of 1 KiB from C against a local cluster (starts one if needed).
bench: build $(OUT)/sync_send
	scripts/bench.sh

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
