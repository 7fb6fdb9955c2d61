#!/bin/sh
# tools/fuzz.sh — build the libFuzzer harnesses (tests/fuzz/fuzz_*.c) with clang, ASan and
# UBSan, and run each for FUZZ_SECONDS (default 60) from its committed seed corpus.
#
#   tools/fuzz.sh                 build, then run every harness
#   tools/fuzz.sh NAME...         only these harnesses (e.g. safetensors manifest)
#   tools/fuzz.sh --build         build only
#   tools/fuzz.sh --gen-seeds     regenerate the seeds that need the library (cursor, state)
#
# Environment: FUZZ_SECONDS (per harness, default 60), FUZZ_BUILD (default build/fuzz),
# CC (default clang), FUZZ_JOBS is not used: harnesses run one after another on one core.
#
# The project's sources are compiled here with clang into $FUZZ_BUILD/lib.a (never the gcc
# build's lib.a: libFuzzer needs clang's coverage instrumentation). The seed corpus in
# tests/fuzz/corpus/NAME stays small and committed; new inputs found go to
# $FUZZ_BUILD/corpus/NAME, crashes to $FUZZ_BUILD/crashes/NAME/. A crash makes the script exit
# 1; turn the input into a test in tests/test_fuzz_regressions.c.
set -eu
cd "$(dirname "$0")/.."

CC=${CC:-clang}
case "$CC" in cc|gcc|*/gcc) CC=clang ;; esac # make exports CC=cc; libFuzzer needs clang
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
OUT=${FUZZ_BUILD:-build/fuzz}
MULTIARCH=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
BLAS_DIR=/usr/lib/$MULTIARCH/openblas-openmp
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS="-std=c11 -O1 -g -D_GNU_SOURCE -I. -isystem /usr/include/$MULTIARCH/openblas-openmp \
  -fopenmp $SAN -Wall -Wextra"
LIBS="-L$BLAS_DIR -Wl,-rpath,$BLAS_DIR -lopenblas -ljansson -lyaml -lcsv -lz -lpcre2-8 -lutf8proc -lm -fopenmp"

build_lib() {
    mkdir -p "$OUT/obj"
    objs=""
    for src in $(find tensor data trainer -name '*.c' | sort); do
        [ "$src" = trainer/main.c ] && continue
        obj="$OUT/obj/$(echo "$src" | tr / _ | sed 's/\.c$/.o/')"
        # Rebuild when the source or any header is newer than the object.
        if [ ! -f "$obj" ] || [ -n "$(find "$src" tensor data trainer -name '*.[ch]' -newer "$obj" | head -1)" ]; then
            $CC $CFLAGS -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
        fi
        objs="$objs $obj"
    done
    rm -f "$OUT/lib.a"
    ar rcs "$OUT/lib.a" $objs
}

build_harness() { # NAME
    src=tests/fuzz/fuzz_$1.c
    $CC $CFLAGS -Werror -fsanitize=fuzzer "$src" "$OUT/lib.a" $LIBS -o "$OUT/fuzz_$1"
}

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
        "$OUT/fuzz_$name" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
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
        --build) mode=build ;;
        --gen-seeds) mode=seeds ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) names="$names $a" ;;
    esac
done
[ -n "$names" ] || names=$(harnesses)

command -v "$CC" >/dev/null || { echo "fuzz.sh: $CC not found (apt-get install clang)" >&2; exit 2; }
echo "fuzz.sh: building with $CC into $OUT"
build_lib
if [ $mode = seeds ]; then
    $CC $CFLAGS -Werror tests/fuzz/gen_seeds.c "$OUT/lib.a" $LIBS -o "$OUT/gen_seeds"
    OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=0 "$OUT/gen_seeds" tests/fuzz/corpus
    exit 0
fi
for n in $names; do build_harness "$n"; done
[ $mode = build ] && exit 0

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
