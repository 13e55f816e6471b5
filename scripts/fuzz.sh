#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ (cargo-fuzz, libFuzzer) one after the other and prints the
# executions of each; fails at the first crash, whose input libFuzzer leaves under
# fuzz/artifacts/<target>/ (turn it into a regression test that calls rmq::fuzzing).
#
#   scripts/fuzz.sh runs N [TARGET...]     each target for N executions   (make fuzz)
#   scripts/fuzz.sh time SECONDS [TARGET...] each target for SECONDS       (make fuzz-short)
#
# Inputs: the committed seeds (fuzz/seeds/<target>/, captured from a real cluster by
# examples/capture_fuzz_seeds.rs) and the corpus earlier runs grew (fuzz/corpus/<target>/, not
# committed), where new inputs go. Needs a nightly toolchain and cargo-fuzz; a fresh machine gets
# both here (rustup, crates.io). Extra libFuzzer flags go in FUZZ_FLAGS.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-}"
amount="${2:-}"
case "$mode" in
  runs) limit="-runs=$amount" ;;
  time) limit="-max_total_time=$amount" ;;
  *) echo "usage: $0 runs N|time SECONDS [TARGET...]" >&2; exit 2 ;;
esac
[[ "$amount" =~ ^[0-9]+$ ]] || { echo "$0: '$amount' is not a number" >&2; exit 2; }
shift 2
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(frame json_header binary_header route stored_message broker_request)
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: installing the nightly toolchain (rustup)" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz from crates.io" >&2
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

cd fuzz
summary=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log="target/fuzz-$t.log"
  mkdir -p target
  start=$(date +%s)
  # -max_len: room for several frames or stored records per input; -timeout: a hang is a bug
  # (no single input needs more than a fraction of a second); -rss_limit_mb: a decoder that
  # allocates from an unchecked length fails the run.
  # shellcheck disable=SC2086
  if ! cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
      "$limit" -max_len=16384 -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=512 \
      -print_final_stats=1 ${FUZZ_FLAGS:-} >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz: $t FAILED; the input is under fuzz/artifacts/$t/, the log in fuzz/$log" >&2
    exit 1
  fi
  runs=$(awk '/stat::number_of_executed_units/ {s += $2} END {print s + 0}' "$log")
  secs=$(($(date +%s) - start))
  line=$(printf '%-16s %12s executions in %5ss, corpus %s inputs, 0 crashes' \
    "$t" "$runs" "$secs" "$(find "corpus/$t" -type f | wc -l)")
  echo "fuzz: $line"
  summary+=("$line")
done
echo "fuzz: summary"
printf '  %s\n' "${summary[@]}"
