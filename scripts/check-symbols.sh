#!/usr/bin/env bash
# The shared library exports exactly the functions the header declares, all prefixed rmq_.
set -euo pipefail
cd "$(dirname "$0")/.."
lib=target/release/librmq.so
exported=$(nm -D --defined-only "$lib" | awk '$2 == "T" { print $3 }' | sort)
declared=$(grep -vE '^[[:space:]]*(\*|/\*|//)' include/rmq.h | grep -oE '\brmq_[a-z0-9_]+\(' | tr -d '(' | sort -u)
stray=$(grep -v '^rmq_' <<<"$exported" || true)
if [[ -n "$stray" ]]; then
  echo "check-symbols: exported symbols without the rmq_ prefix:" >&2
  echo "$stray" >&2
  exit 1
fi
if ! diff <(echo "$declared") <(echo "$exported") >/tmp/rmq-symbols.diff; then
  echo "check-symbols: header declarations (<) and library exports (>) differ:" >&2
  cat /tmp/rmq-symbols.diff >&2
  exit 1
fi
echo "check-symbols: $(wc -l <<<"$exported") exported functions, all declared in include/rmq.h"
