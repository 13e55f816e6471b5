#!/usr/bin/env bash
# Fails if include/rmq.h or its copy in the Go module, bindings/go/rmq/rmq.h (both just regenerated
# by the build), differs from the committed header.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "check-header: not a git checkout; cannot compare with the committed header" >&2
  exit 1
fi
for h in include/rmq.h bindings/go/rmq/rmq.h; do
  if ! git ls-files --error-unmatch "$h" >/dev/null 2>&1; then
    echo "check-header: $h is not committed" >&2
    exit 1
  fi
  if [[ -n "$(git status --porcelain -- "$h")" ]]; then
    echo "check-header: $h differs from what the build generates; commit the regenerated header:" >&2
    git --no-pager diff -- "$h" | head -40 >&2
    exit 1
  fi
done
cmp -s include/rmq.h bindings/go/rmq/rmq.h || { echo "check-header: bindings/go/rmq/rmq.h differs from include/rmq.h" >&2; exit 1; }
echo "check-header: include/rmq.h and bindings/go/rmq/rmq.h match the build"
