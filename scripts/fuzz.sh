#!/bin/bash
# Fuzzes the trainer's readers with libFuzzer (clang-14 from Debian, with ASan and UBSan):
# the config parser, the CSV reader, the IDX reader, the checkpoint loader, a user's HDF5
# data file and the metric log read on resume.
#
#   scripts/fuzz.sh [SECONDS] [TARGET ...]     default 60 s each, targets: config csv idx ckpt h5data metrics
#
# Each target starts from its seed corpus in tests/fuzz/corpus/TARGET and grows a working
# corpus in build-fuzz/corpus/TARGET (not committed). A crash, leak or timeout is saved as
# tests/fuzz/corpus/TARGET/crash-<sha1> (libFuzzer's artifact), so it becomes a regression
# input that `ctest -L fuzz` replays in every build from then on; fix the code, then commit
# the file. Exit status: 0 when no target found anything, 1 when one did, 2 when the targets do
# not build (or clang-14 is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(config csv idx ckpt h5data metrics)
command -v clang-14 >/dev/null || { echo "fuzz.sh: needs clang-14 and libclang-rt-14-dev (scripts/install-deps.sh --fuzz)" >&2; exit 2; }

mkdir -p build-fuzz
if ! { CC=clang-14 cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTRAINER_FUZZ=ON &&
    cmake --build build-fuzz -j"$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}"); } >build-fuzz/build.log 2>&1; then
    tail -30 build-fuzz/build.log >&2
    echo "fuzz.sh: the fuzz targets do not build (build-fuzz/build.log)" >&2
    exit 2
fi
export ASAN_OPTIONS=fast_unwind_on_malloc=0:detect_stack_use_after_return=0:allocator_may_return_null=1
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

found=0
for t in "${targets[@]}"; do
    work=build-fuzz/corpus/$t
    mkdir -p "$work"
    log=build-fuzz/fuzz_$t.log
    echo "== fuzz_$t for $seconds s (seeds: tests/fuzz/corpus/$t, log: $log)"
    # -rss_limit_mb: a reader must not need more than 2 GB for any input of at most 64 KiB.
    # -malloc_limit_mb: libhdf5 allocates the size a damaged file claims for a heap or a
    # chunk (32-bit fields: up to 4 GiB) before it reads it, and fails when the read does;
    # the allocation is only address space (the corpus keeps such an input,
    # tests/fuzz/corpus/h5data/big-alloc-libhdf5-local-heap-4gib), so the HDF5 targets
    # may reserve that much
    malloc_limit=2048
    [[ $t == h5data || $t == metrics ]] && malloc_limit=4200
    if build-fuzz/tests/fuzz_$t "$work" "tests/fuzz/corpus/$t" -max_total_time="$seconds" -max_len=65536 \
        -rss_limit_mb=2048 -malloc_limit_mb="$malloc_limit" -timeout=20 -artifact_prefix="tests/fuzz/corpus/$t/" -print_final_stats=1 \
        >"$log" 2>&1; then
        grep -E "^stat::number_of_executed_units|^#[0-9]+.*DONE" "$log" | tail -2 | sed 's/^/   /'
    else
        found=1
        echo "   FOUND a problem; the input is in tests/fuzz/corpus/$t/:"
        grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$log" | head -5 | sed 's/^/   /'
    fi
done
exit $found
