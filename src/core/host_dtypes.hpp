// The host module's one dtype switch for its own kernels (select.cpp, median.cpp): calls
// f with a value of the C++ type of a NumPy element type. The SIMD kernel table has its
// own slots (table.hpp); this serves the kernels compiled once, in the host module.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstdint>

#include "reducers.hpp"

namespace ndpool {

template <class F>
void by_dtype(const nanobind::dlpack::dtype &dt, F &&f) {
    using Code = nanobind::dlpack::dtype_code;
    const auto code = static_cast<Code>(dt.code);
    if (code == Code::Float && dt.bits == 16) return f(half{});
    if (code == Code::Float && dt.bits == 32) return f(float{});
    if (code == Code::Float && dt.bits == 64) return f(double{});
    if (code == Code::Int && dt.bits == 8) return f(int8_t{});
    if (code == Code::Int && dt.bits == 16) return f(int16_t{});
    if (code == Code::Int && dt.bits == 32) return f(int32_t{});
    if (code == Code::Int && dt.bits == 64) return f(int64_t{});
    if (code == Code::UInt && dt.bits == 8) return f(uint8_t{});
    if (code == Code::UInt && dt.bits == 16) return f(uint16_t{});
    if (code == Code::UInt && dt.bits == 32) return f(uint32_t{});
    if (code == Code::UInt && dt.bits == 64) return f(uint64_t{});
    throw nanobind::type_error("core: unsupported dtype");
}

}  // namespace ndpool
