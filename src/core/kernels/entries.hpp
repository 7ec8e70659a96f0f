// The typed entry points of one kernel library: each fills its part of the KernelTable
// for the element types this level compiles. The baseline library compiles every type;
// the vector levels compile the types that images and networks use (float16/32/64,
// uint8, uint16) and leave the rest to the baseline (which halves their build time).
#pragma once

#include <cstdint>

#include "../backward.hpp"
#include "../fastpaths.hpp"
#include "../table.hpp"

namespace ndpool {

template <class T> struct Code;
template <> struct Code<half> { static constexpr DType value = f16; };
template <> struct Code<float> { static constexpr DType value = f32; };
template <> struct Code<double> { static constexpr DType value = f64; };
template <> struct Code<int8_t> { static constexpr DType value = i8; };
template <> struct Code<int16_t> { static constexpr DType value = i16; };
template <> struct Code<int32_t> { static constexpr DType value = i32; };
template <> struct Code<int64_t> { static constexpr DType value = i64_; };
template <> struct Code<uint8_t> { static constexpr DType value = u8; };
template <> struct Code<uint16_t> { static constexpr DType value = u16; };
template <> struct Code<uint32_t> { static constexpr DType value = u32; };
template <> struct Code<uint64_t> { static constexpr DType value = u64; };

template <class... T> struct Types {};
using FloatTypes = Types<half, float, double>;
#if NDPOOL_ALL_TYPES
using IntegerTypes = Types<uint8_t, uint16_t, int8_t, int16_t, int32_t, int64_t, uint32_t, uint64_t>;
#else
using IntegerTypes = Types<uint8_t, uint16_t>;
#endif

template <class R> constexpr Reduction reduction_of() {
    if constexpr (std::is_same<R, Max>::value) return max_;
    else if constexpr (std::is_same<R, Min>::value) return min_;
    else return sum_;
}

template <class R, class T>
void forward_entry(const void *x, const Geometry &g, const Outputs &out) {
    forward_dispatch<R, T, typename Acc<T>::type>(static_cast<const T *>(x), g, out);
}

template <class R, class T>
void planes_entry(const void *x, const Geometry &g, const Outputs &out) {
    reduce_planes<R, T, typename Acc<T>::type>(static_cast<const T *>(x), g, out);
}

// Fills forward and planes entries of reduction R for every type in the list.
template <class R, class... T>
void fill_forward(KernelTable &table, Types<T...>) {
    constexpr Reduction r = reduction_of<R>();
    ((table.forward[r][Code<T>::value] = &forward_entry<R, T>), ...);
    ((table.planes[r][Code<T>::value] = &planes_entry<R, T>), ...);
}

void fill_max(KernelTable &table);
void fill_min(KernelTable &table);
void fill_sum(KernelTable &table);
void fill_backward(KernelTable &table);

}  // namespace ndpool
