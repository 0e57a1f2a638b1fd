#!/bin/bash
# Builds the rules fuzzer with clang (libFuzzer + ASan + UBSan) in its own build directory
# and runs it for a bounded time. Exits non-zero on any crash, leak or sanitizer report.
#   tests/fuzz/run-fuzz.sh [SECONDS]        (default 60)
# Env: USBVM_FUZZ_BUILD (build dir, default build-fuzz under the source tree).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${USBVM_FUZZ_BUILD:-$src/build-fuzz}
seconds=${1:-60}

CC=clang cmake -S "$src" -B "$build" -DUSBVM_FUZZ=ON -DUSBVM_SANITIZE=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$build" --target fuzz-rules -j"$(nproc)" >/dev/null

# Work on a copy of the committed corpus so that a run does not change the tree; seed it
# with the data files too.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$src"/tests/fuzz/corpus/* "$work"/
i=0
while IFS= read -r line; do
    i=$((i + 1))
    printf '%s\n' "$line" > "$work/good-$i"
done < <(grep -v '^#' "$src/tests/rules/good.rules" | grep -v '^$')

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd "$work"
set +e
"$build/tests/fuzz/fuzz-rules" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -dict="$src/tests/fuzz/rules.dict" -print_final_stats=1 "$work" \
    -artifact_prefix="$build/fuzz-" 2>&1 | tail -n 25
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
    echo "run-fuzz.sh: the fuzzer found a problem (exit $rc); reproducer in $build/fuzz-*" >&2
    exit 1
fi
echo "run-fuzz.sh: ${seconds}s without a crash, leak or sanitizer report"
