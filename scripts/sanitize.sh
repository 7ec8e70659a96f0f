#!/usr/bin/env bash
# Build the compiled core with -fsanitize=address,undefined into its own directory and run
# the compiled-core tests under it. The editable install is never touched: the build is a
# snapshot of the sources installed into $DIR/site, which goes first on PYTHONPATH along
# with an empty stand-in for the editable install's import hook (its .pth file imports
# _editable_skbc_ndpool, and finds ours first), so every Python process, sub-processes
# included, imports ndpool from $DIR/site.
#
#   scripts/sanitize.sh                     # snapshot of the working tree (tracked + new files)
#   scripts/sanitize.sh --rev HEAD          # snapshot of a commit
#   scripts/sanitize.sh --plain             # same, without sanitizers (test a commit in isolation)
#   scripts/sanitize.sh -- -k max_pool -x   # extra pytest arguments after --
#
# Environment: NDPOOL_SANITIZE_DIR (default build/sanitize), NDPOOL_SANITIZE_TESTS (the
# test files to run), CXX (compiler whose ASan runtime is preloaded, default g++).
# See docs/sanitizers.md.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${NDPOOL_SANITIZE_DIR:-$REPO/build/sanitize}
REV=""
SANITIZE=ON
PYTHON=${PYTHON:-python}
while [[ $# -gt 0 ]]; do
    case $1 in
        --rev) REV=$2; shift 2 ;;
        --plain) SANITIZE=OFF; shift ;;
        --) shift; break ;;
        -h|--help) sed -n 2,18p "$0"; exit 0 ;;
        *) echo "sanitize.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
DEFAULT_TESTS="tests/test_compiled_property.py tests/test_threads.py tests/test_fuzz.py
tests/test_inputs.py tests/test_max_min.py tests/test_avg_lp.py tests/test_adaptive_fractional.py
tests/test_unpool_global_nn.py tests/test_padding_words_and_ties.py tests/test_errors.py
tests/test_gradcheck.py tests/test_golden.py tests/test_fastpaths.py"
TESTS=${NDPOOL_SANITIZE_TESTS:-$DEFAULT_TESTS}

# 1. a snapshot of the sources, so a build never mixes with the editable one
rm -rf "$DIR/src" "$DIR/site" "$DIR/wheel"
mkdir -p "$DIR/src" "$DIR/site" "$DIR/wheel"
if [[ -n $REV ]]; then
    git -C "$REPO" archive "$REV" | tar -x -C "$DIR/src"
else
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
        | xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' \
        | tar --null -T - -cf -) | tar -x -C "$DIR/src"
fi

# 2. build a wheel with the sanitizers and unpack it into $DIR/site
echo "sanitize.sh: building the core (NDPOOL_SANITIZE=$SANITIZE) in $DIR" >&2
"$PYTHON" -m pip wheel --no-build-isolation --no-deps -q -w "$DIR/wheel" "$DIR/src" \
    -Ccmake.define.NDPOOL_SANITIZE=$SANITIZE
"$PYTHON" -m zipfile -e "$DIR"/wheel/ndpool-*.whl "$DIR/site"
echo "# stands in for the editable install's import hook (scripts/sanitize.sh)" \
    > "$DIR/site/_editable_skbc_ndpool.py"

# 3. run the tests from the snapshot, importing ndpool from $DIR/site
export PYTHONPATH="$DIR/site${PYTHONPATH:+:$PYTHONPATH}"
export NDPOOL_SANITIZE_BUILD=1   # tests that start a sub-process with torch skip themselves
if [[ $SANITIZE == ON ]]; then
    ASAN_LIB=$("${CXX:-g++}" -print-file-name=libasan.so)
    STDCXX_LIB=$("${CXX:-g++}" -print-file-name=libstdc++.so)
    [[ -e $ASAN_LIB ]] || { echo "sanitize.sh: no libasan.so from ${CXX:-g++}" >&2; exit 1; }
    # libstdc++ preloaded too: python is not a C++ program, and without it ASan cannot
    # find the real __cxa_throw when the core throws (CHECK failed: real___cxa_throw)
    export LD_PRELOAD="$ASAN_LIB $STDCXX_LIB"
    # CPython's own allocations look like leaks to LeakSanitizer: only report memory errors;
    # an impossible allocation (a known bug, see test_memory.py) throws bad_alloc as usual.
    # Reports go to files as well, since pytest captures what a test writes to stderr.
    rm -f "$DIR"/report.*
    export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=1:print_summary=1:log_path=$DIR/report:${ASAN_OPTIONS:-}"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$DIR/report:${UBSAN_OPTIONS:-}"
fi
cd "$DIR/src"
"$PYTHON" -c 'import ndpool, sys; assert ndpool.__file__.startswith(sys.argv[1]), ndpool.__file__' "$DIR/site"
status=0
# shellcheck disable=SC2086
"$PYTHON" -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning $TESTS "$@" || status=$?
for report in "$DIR"/report.*; do
    [[ -e $report ]] || continue
    echo "---- sanitizer report $report" >&2
    head -n 80 "$report" >&2
    status=${status/#0/1}
done
exit "$status"
