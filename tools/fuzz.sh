#!/bin/sh
# tools/fuzz.sh — run the libFuzzer harnesses (tests/fuzz/fuzz_*.c) that `make fuzz-build`
# built with clang, ASan and UBSan from the library's own sources and flags (the Makefile is
# the one place that knows them), each for FUZZ_SECONDS (default 60) from its committed seed
# corpus. `make fuzz` builds, then runs this.
#
#   tools/fuzz.sh                 run every harness
#   tools/fuzz.sh NAME...         only these harnesses (e.g. safetensors manifest)
#   tools/fuzz.sh --gen-seeds     regenerate the seeds that need the library (cursor, state)
#
# Environment: FUZZ_SECONDS (per harness, default 60); FUZZ_BIN, where the harnesses are
# (default build/fuzz/fuzz, as `make fuzz-build` writes them); FUZZ_BUILD (default build/fuzz)
# for the working corpus, crashes and logs. Harnesses run one after another on one core.
#
# The seed corpus in tests/fuzz/corpus/NAME stays small and committed; new inputs found go to
# $FUZZ_BUILD/corpus/NAME, crashes to $FUZZ_BUILD/crashes/NAME/. A crash makes the script exit
# 1; turn the input into a test in tests/test_fuzz_regressions.c.
set -eu
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
OUT=${FUZZ_BUILD:-build/fuzz}
BIN=${FUZZ_BIN:-$OUT/fuzz}

harnesses() {
    for f in tests/fuzz/fuzz_*.c; do basename "$f" .c | sed 's/^fuzz_//'; done
}

run_harness() { # NAME -> prints one summary line; returns 1 on a finding
    name=$1
    mkdir -p "$OUT/corpus/$name" "$OUT/crashes/$name" "$OUT/logs"
    log="$OUT/logs/$name.log"
    # -timeout: a single input taking > 10 s is a hang; -rss_limit_mb: a parser that
    # allocates what a header claims is a finding too.
    set +e
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$BIN/fuzz_$name" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$OUT/crashes/$name/" \
        "$OUT/corpus/$name" "tests/fuzz/corpus/$name" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    files=$(ls "$OUT/corpus/$name" | wc -l)
    bytes=$(du -sk "$OUT/corpus/$name" | cut -f1)
    printf '%-16s %s  execs=%s  corpus=%s files (%s KB)  log=%s\n' "$name" \
        "$([ $rc -eq 0 ] && echo ok || echo FAILED)" "${execs:-?}" "$files" "$bytes" "$log"
    if [ $rc -ne 0 ]; then
        grep -m5 -E 'ERROR|runtime error|SUMMARY|Test unit written' "$log" | sed 's/^/    /'
        return 1
    fi
}

mode=run
names=""
for a in "$@"; do
    case "$a" in
        --gen-seeds) mode=seeds ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) names="$names $a" ;;
    esac
done
[ -n "$names" ] || names=$(harnesses)
for n in $names; do
    [ -x "$BIN/fuzz_$n" ] || { echo "fuzz.sh: $BIN/fuzz_$n is not built; run make fuzz-build" >&2; exit 2; }
done
if [ $mode = seeds ]; then
    OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=0 "$BIN/gen_seeds" tests/fuzz/corpus
    exit 0
fi

echo "fuzz.sh: running each harness for ${FUZZ_SECONDS}s"
# Harness scratch directories carry this run's tag, so the cleanup below spares the
# directories of any other fuzz run going on at the same time.
export LORAFIT_FUZZ_RUN="run$$"
failed=0
for n in $names; do run_harness "$n" || failed=1; done
rm -rf /dev/shm/lorafit-fuzz-"$LORAFIT_FUZZ_RUN"-* /tmp/lorafit-fuzz-"$LORAFIT_FUZZ_RUN"-* 2>/dev/null || true
if [ $failed -ne 0 ]; then
    echo "fuzz.sh: FINDINGS above; reproduce with $OUT/fuzz_NAME FILE" >&2
    exit 1
fi
echo "fuzz.sh: no crashes, hangs or sanitizer reports"
