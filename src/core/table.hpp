// The contract between the host module (_core) and a kernel library (_kernels/<level>.so):
// the library is the kernels compiled for one SIMD level; the host loads the best level
// the CPU has and calls it only through this table of plain function pointers, handing
// it the thread pool the same way. Types whose kernels a library leaves out (nullptr)
// run the baseline library's.
#pragma once

#include <cstdint>

#include "geometry.hpp"

namespace ndpool {

constexpr int kTableVersion = 1;

// Element types in the order of every per-type array below.
enum DType : int { f16, f32, f64, i8, i16, i32, i64_, u8, u16, u32, u64, dtype_count };
enum Reduction : int { max_, min_, sum_, reduction_count };
enum IndexSlot : int { slot_u8, slot_u16, slot_flat, slot_count };

struct Host {
    // body(context, begin, end) over chunks of [0, n), on the host's pool
    void (*parallel_for)(int64_t n, int64_t grain, void (*body)(void *, int64_t, int64_t), void *context);
    int (*threads)();
};

using ForwardFn = void (*)(const void *x, const Geometry &g, const Outputs &out);
using ScatterFn = void (*)(const void *dy, const void *arg, void *dx, const Geometry &g);
using SpreadFn = void (*)(const void *dy, const Divisor &divisor, void *dx, const Geometry &g);
using SplitTiesFn = void (*)(const void *x, const void *dy, void *dx, const Geometry &g);
using UnpoolFn = void (*)(const void *x, const int64_t *index, void *y, i64 planes, i64 n_in, i64 n_out);

struct KernelTable {
    int version = kTableVersion;
    const char *level = nullptr;
    ForwardFn forward[reduction_count][dtype_count] = {};  // window reductions
    ForwardFn planes[reduction_count][dtype_count] = {};   // whole-plane (global) reductions
    ScatterFn scatter[dtype_count][slot_count] = {};       // max/min backward
    SpreadFn spread[dtype_count] = {};                     // mean backward
    SplitTiesFn split_ties[2][dtype_count] = {};           // max, min with ties="split"
    UnpoolFn unpool[dtype_count] = {};
    UnpoolFn unpool_backward[dtype_count] = {};
};

// The one symbol a kernel library exports.
using TableEntry = const KernelTable *(*)(const Host *host);
constexpr const char *kTableSymbol = "ndpool_kernel_table";

}  // namespace ndpool
