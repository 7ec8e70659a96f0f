#!/usr/bin/env bash
# Build the SIMD kernel checker (tests/simd/check_kernels.cpp) once per SIMD level and run
# it: natively at each x86-64 level this CPU runs (baseline; avx2 = x86-64-v3; avx512 =
# x86-64-v4, built always but run only where the CPU has AVX-512), and for AArch64
# cross-compiled (baseline, and neon with -DNDPOOL_NEON) and run under qemu-aarch64.
#
#   scripts/check_simd.sh                  # every level this machine can check
#   scripts/check_simd.sh --require-neon   # also fail when the AArch64 levels cannot run
#
# Environment: NDPOOL_SIMD_DIR (the binaries, default build/simd), CXX (native compiler,
# default g++), NDPOOL_CI_INSTALL=1 (as root: apt-get the cross compiler and qemu when
# missing). One summary line per level, "check_simd: <arch>/<level> (...): ...".
# See docs/simd.md.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${NDPOOL_SIMD_DIR:-$REPO/build/simd}
CXX=${CXX:-g++}
CROSS=aarch64-linux-gnu-g++
REQUIRE_NEON=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --require-neon) REQUIRE_NEON=1; shift ;;
        -h|--help) sed -n 2,13p "$0"; exit 0 ;;
        *) echo "check_simd.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
mkdir -p "$DIR"
FLAGS=(-std=c++17 -O2 -Wall -Wextra -I"$REPO/src/core" "$REPO/tests/simd/check_kernels.cpp")
failed=0 passed=0 skipped=0

# Whether /proc/cpuinfo lists every one of the flags.
cpu_has() {
    local have flag
    have=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
    for flag in "$@"; do [[ $have == *" $flag "* ]] || return 1; done
}

# build NAME COMPILER FLAGS...: compile $DIR/NAME in the background, its messages in NAME.log
build() {
    local name=$1 compiler=$2
    shift 2
    rm -f "$DIR/$name"
    "$compiler" "$@" "${FLAGS[@]}" -o "$DIR/$name" >"$DIR/$name.log" 2>&1 &
}

# check ARCH/LEVEL NAME HOW [RUNNER...]: run one build, which must report LEVEL and pass
check() {
    local label=$1 name=$2 how=$3 out status=0
    shift 3
    cat "$DIR/$name.log" >&2
    if [[ ! -x $DIR/$name ]]; then
        echo "check_simd: $label ($how): FAILED to build (above)"
        failed=$((failed + 1))
        return
    fi
    out=$("$@" "$DIR/$name" 2>&1) || status=$?
    local last=${out##*$'\n'}
    if [[ $status -ne 0 || $last != "check_kernels [${label#*/}]: "*" passed, 0 failed" ]]; then
        printf '%s\n' "$out"
        echo "check_simd: $label ($how): FAILED (exit $status)"
        failed=$((failed + 1))
        return
    fi
    echo "check_simd: $label ($how): ${last#*]: }"
    passed=$((passed + 1))
}

# 1. the tools for AArch64: installed here when asked to, or the NEON levels are not checked
qemu() { command -v qemu-aarch64 || command -v qemu-aarch64-static; }
neon_tools() { command -v "$CROSS" >/dev/null && qemu >/dev/null; }
if ! neon_tools && [[ ${NDPOOL_CI_INSTALL:-} == 1 && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    start=$SECONDS
    echo "check_simd: installing g++-aarch64-linux-gnu qemu-user (NDPOOL_CI_INSTALL=1)"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends g++-aarch64-linux-gnu qemu-user; } >"$DIR/apt.log" 2>&1; then
        cat "$DIR/apt.log" >&2
        echo "check_simd: apt-get failed (above)"
    fi
    echo "check_simd: apt-get took $((SECONDS - start)) s"
fi

# 2. every build at once (a few seconds each)
x86=0
if [[ $(uname -m) == x86_64 ]]; then
    x86=1
    build x86-baseline "$CXX"
    build x86-avx2 "$CXX" -march=x86-64-v3
    # GCC 12's avx512fintrin.h trips -Wmaybe-uninitialized on its own _mm512_undefined_*
    build x86-avx512 "$CXX" -march=x86-64-v4 -Wno-maybe-uninitialized
fi
if neon_tools; then
    # static, so qemu needs no AArch64 libraries at run time; else the cross sysroot
    LINK=(-static)
    echo 'int main() { return 0; }' >"$DIR/static.cpp"
    "$CROSS" -static "$DIR/static.cpp" -o "$DIR/static" 2>/dev/null || LINK=()
    build arm-baseline "$CROSS" "${LINK[@]}"
    build arm-neon "$CROSS" -march=armv8-a+simd -DNDPOOL_NEON "${LINK[@]}"
fi
wait

# 3. run what this machine runs
if [[ $x86 == 1 ]]; then
    check x86-64/baseline x86-baseline "-O2, native"
    if cpu_has avx2 avx fma bmi1 bmi2 f16c movbe abm; then
        check x86-64/avx2 x86-avx2 "-O2 -march=x86-64-v3, native"
    else
        echo "check_simd: x86-64/avx2 (-O2 -march=x86-64-v3): built, not run: this CPU is not x86-64-v3"
        skipped=$((skipped + 1))
    fi
    if cpu_has avx512f avx512bw avx512vl avx512dq avx512cd; then
        check x86-64/avx512 x86-avx512 "-O2 -march=x86-64-v4, native"
    elif [[ -x $DIR/x86-avx512 ]]; then
        cat "$DIR/x86-avx512.log" >&2
        echo "check_simd: x86-64/avx512 (-O2 -march=x86-64-v4): built, not run: this CPU lacks AVX-512 F/BW/VL/DQ/CD"
        skipped=$((skipped + 1))
    else
        check x86-64/avx512 x86-avx512 "-O2 -march=x86-64-v4"  # reports the build failure
    fi
else
    echo "check_simd: x86-64 levels not checked: this is not an x86-64 machine"
fi
if neon_tools; then
    if [[ $(uname -m) == aarch64 ]]; then
        runner=() how=native
    elif [[ ${#LINK[@]} -gt 0 ]]; then
        runner=("$(qemu)") how="static, $(basename "$(qemu)")"
    else
        runner=("$(qemu)" -L /usr/aarch64-linux-gnu) how="$(basename "$(qemu)") -L /usr/aarch64-linux-gnu"
    fi
    check aarch64/baseline arm-baseline "-O2, $how" "${runner[@]}"
    check aarch64/neon arm-neon "-O2 -march=armv8-a+simd -DNDPOOL_NEON, $how" "${runner[@]}"
    # the whole kernel library must compile for AArch64 too (GCC 12 there has no
    # _Float16 in C++, for one): every kernel source, syntax only, at both levels
    for level in baseline neon; do
        flags=(-std=c++17 -I"$REPO/src/core" -DNDPOOL_LEVEL=$level -DNDPOOL_ALL_TYPES=1 -fsyntax-only)
        [[ $level == neon ]] && flags+=(-march=armv8-a+simd -DNDPOOL_NEON -DNDPOOL_ALL_TYPES=0)
        if for source in "$REPO"/src/core/kernels/*.cpp; do "$CROSS" "${flags[@]}" "$source" || exit 1; done \
            2>"$DIR/arm-$level-library.log"; then
            echo "check_simd: aarch64/$level kernel library: compiles"
        else
            cat "$DIR/arm-$level-library.log" >&2
            echo "check_simd: aarch64/$level kernel library: does not compile"
            failed=$((failed + 1))
        fi
    done
    neon_checked=1
else
    echo "check_simd: aarch64/neon not checked: no $CROSS or qemu-aarch64 here" \
        "(apt-get install g++-aarch64-linux-gnu qemu-user, or NDPOOL_CI_INSTALL=1 as root)"
    neon_checked=0
fi

echo "check_simd: $passed levels passed, $failed failed, $skipped not run"
[[ $failed -eq 0 ]] || exit 1
if [[ $neon_checked == 0 && $REQUIRE_NEON == 1 ]]; then
    echo "check_simd: --require-neon: the NEON kernels were not checked"
    exit 1
fi
