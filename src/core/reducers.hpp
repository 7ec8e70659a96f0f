// The reductions: max and min (a NaN wins, the last one in scan order; otherwise the
// first extreme stays) and sum (averages divide afterwards). take(v, best), whether v
// replaces best, is written once for scalars (a bool) and GCC vector types (a lane mask).
#pragma once

#include <limits>
#include <type_traits>

namespace ndpool {

struct Max {
    static constexpr bool extreme = true;
    template <class A>
    static A identity() {
        return std::numeric_limits<A>::has_infinity ? -std::numeric_limits<A>::infinity()
                                                    : std::numeric_limits<A>::lowest();
    }
    template <class A>
    static auto take(A v, A best) { return v > best || v != v; }
};

struct Min {
    static constexpr bool extreme = true;
    template <class A>
    static A identity() {
        return std::numeric_limits<A>::has_infinity ? std::numeric_limits<A>::infinity()
                                                    : std::numeric_limits<A>::max();
    }
    template <class A>
    static auto take(A v, A best) { return v < best || v != v; }
};

// Max or Min over data known to hold no NaN: the same choice as R (the first extreme
// stays) without the NaN test, so a float pass is one max/min instruction per vector
// instead of compare, unordered-compare, or and blend.
template <class R>
struct NanFree : R {
    template <class A>
    static auto take(A v, A best) {
        if constexpr (std::is_same<R, Max>::value) return v > best;
        else return v < best;
    }
};

struct Sum {
    static constexpr bool extreme = false;
    template <class A>
    static A identity() { return A(0); }
};

// The float16 element type: _Float16, or on AArch64 with GCC before 13 (no _Float16 in
// C++) the storage type __fp16 of the same format; both compute through float.
#if defined(__aarch64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
using half = __fp16;
#else
using half = _Float16;
#endif

// Accumulator type: float16 works in float32; everything else in itself.
template <class T>
struct Acc { using type = T; };
template <>
struct Acc<half> { using type = float; };

}  // namespace ndpool
