// Block reductions that are no window pass: the median and the mode of each block, and
// exact int64 sums of integer blocks (the pooling kernels sum floats only). A block is
// the cells [o*f, min((o+1)*f, n)) along every spatial dim of (planes, *spatial), so a
// partial block at the end holds its in-bounds cells only; coarsen.py decides the rest.
// Selection compares and moves values, so it is built once, in the host module, rather
// than per SIMD level; the loops run on the host's pool with the GIL released.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "geometry.hpp"
#include "host_dtypes.hpp"
#include "reducers.hpp"
#include "thread_pool.hpp"

namespace nb = nanobind;

namespace ndpool {
namespace {

enum class Select { median, mode, sum };

struct Blocks {
    std::vector<i64> in, out, factor, step;  // per spatial dim; step: input stride in cells
    i64 planes = 0, in_plane = 1, out_plane = 1;
};

template <class T>
constexpr bool is_float = std::is_floating_point_v<T> || std::is_same_v<T, half>;

template <class T>
bool is_nan(T v) {
    if constexpr (is_float<T>) return v != v;
    return false;
}

// NumPy's median of an even count: the mean of the two middle values, in the input's
// float type (float16 through float32, as numpy.mean does).
template <class T>
T middle(T lo, T hi) {
    if constexpr (std::is_same_v<T, half>) return static_cast<half>((static_cast<float>(lo) + static_cast<float>(hi)) / 2.0f);
    else if constexpr (is_float<T>) return (lo + hi) / T(2);
    else return lo;  // integers: the lower middle value
}

// The cells of output block `o` (flat in the output plane) of plane `p`, into `cells`.
template <class T>
void gather(const T *x, const Blocks &b, i64 p, i64 o, std::vector<T> &cells) {
    const size_t dims = b.in.size();
    i64 base = p * b.in_plane;
    i64 extent[8], at[8];
    for (size_t d = dims; d-- > 0;) {
        const i64 od = o % b.out[d];
        o /= b.out[d];
        const i64 start = od * b.factor[d];
        extent[d] = std::min(b.factor[d], b.in[d] - start);
        base += start * b.step[d];
        at[d] = 0;
    }
    cells.clear();
    const i64 run = extent[dims - 1];
    for (;;) {
        i64 offset = base;
        for (size_t d = 0; d + 1 < dims; ++d) offset += at[d] * b.step[d];
        cells.insert(cells.end(), x + offset, x + offset + run);
        size_t d = dims - 1;
        while (d-- > 0) {  // odometer over every dim but the last (copied as a run)
            if (++at[d] < extent[d]) break;
            at[d] = 0;
        }
        if (d == static_cast<size_t>(-1)) return;
    }
}

template <class T>
T select_block(std::vector<T> &v, Select kind, bool skipna) {
    size_t n = v.size();
    if constexpr (is_float<T>) {  // NaN wins the block, unless skipna leaves it out
        const T nan = static_cast<T>(std::numeric_limits<float>::quiet_NaN());
        if (!skipna && std::any_of(v.begin(), v.end(), [](T a) { return is_nan(a); })) return nan;
        n = static_cast<size_t>(std::remove_if(v.begin(), v.end(), [](T a) { return is_nan(a); }) - v.begin());
        if (n == 0) return nan;
    }
    if (kind == Select::median) {
        const size_t k = (n - 1) / 2;
        std::nth_element(v.begin(), v.begin() + k, v.begin() + n);
        const T lo = v[k];
        if (!is_float<T> || n % 2) return lo;
        return middle(lo, *std::min_element(v.begin() + k + 1, v.begin() + n));
    }
    std::sort(v.begin(), v.begin() + n);  // mode: the longest run, ties to the smallest
    T best = v[0];
    size_t best_run = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && v[j] == v[i]) ++j;
        if (j - i > best_run) best = v[i], best_run = j - i;
        i = j;
    }
    return best;
}

template <class T>
void run_blocks(const void *xv, void *yv, const Blocks &b, Select kind, bool skipna) {
    const T *x = static_cast<const T *>(xv);
    const i64 total = b.planes * b.out_plane;
    ThreadPool::instance().parallel_for(total, 64, [&](int64_t begin, int64_t end) {
        std::vector<T> cells;
        for (i64 i = begin; i < end; ++i) {
            gather(x, b, i / b.out_plane, i % b.out_plane, cells);
            if (kind == Select::sum) {
                uint64_t acc = 0;  // wraps as NumPy's int64 sum does, without overflow UB
                for (T c : cells) acc += static_cast<uint64_t>(static_cast<int64_t>(c));
                static_cast<int64_t *>(yv)[i] = static_cast<int64_t>(acc);
            } else {
                static_cast<T *>(yv)[i] = select_block(cells, kind, skipna);
            }
        }
    });
}

using Input = nb::ndarray<nb::ro, nb::device::cpu, nb::c_contig>;

// x: (planes, *spatial) C-contiguous; factors: one per spatial dim (at most 7).
nb::ndarray<nb::numpy> block_select(Input x, std::vector<i64> factors, const std::string &kind, bool skipna) {
    Select what;
    if (kind == "median") what = Select::median;
    else if (kind == "mode") what = Select::mode;
    else if (kind == "sum") what = Select::sum;
    else throw std::invalid_argument("core: unknown block selection");
    const size_t dims = factors.size();
    if (dims < 1 || dims > 7 || x.ndim() != dims + 1)
        throw std::invalid_argument("core: expected (planes, *spatial) with one factor per spatial dim");
    Blocks b;
    b.planes = static_cast<i64>(x.shape(0));
    b.in.resize(dims), b.out.resize(dims), b.factor = factors, b.step.resize(dims);
    std::vector<size_t> shape{static_cast<size_t>(b.planes)};
    for (size_t d = 0; d < dims; ++d) {
        if (factors[d] < 1) throw std::invalid_argument("core: factors must be at least 1");
        b.in[d] = static_cast<i64>(x.shape(d + 1));
        b.out[d] = (b.in[d] + factors[d] - 1) / factors[d];
        b.in_plane *= b.in[d], b.out_plane *= b.out[d];
        shape.push_back(static_cast<size_t>(b.out[d]));
    }
    for (size_t d = dims; d-- > 0;) b.step[d] = d + 1 == dims ? 1 : b.step[d + 1] * b.in[d + 1];
    const nb::dlpack::dtype out_type = what == Select::sum ? nb::dtype<int64_t>() : x.dtype();
    if (what == Select::sum && static_cast<nb::dlpack::dtype_code>(x.dtype().code) == nb::dlpack::dtype_code::Float)
        throw nb::type_error("core: block sums of floats go through the pooling kernels");
    const size_t count = static_cast<size_t>(b.planes * b.out_plane), bytes = count * out_type.bits / 8;
    void *y = ::operator new(bytes ? bytes : 1);
    nb::capsule owner(y, [](void *p) noexcept { ::operator delete(p); });
    if (count && b.in_plane) {
        nb::gil_scoped_release release;
        by_dtype(x.dtype(), [&](auto tag) { run_blocks<decltype(tag)>(x.data(), y, b, what, skipna); });
    }
    return nb::ndarray<nb::numpy>(y, shape.size(), shape.data(), owner, nullptr, out_type);
}

}  // namespace

void bind_select(nb::module_ &m) {
    m.def("block_select", &block_select, nb::arg("x"), nb::arg("factors"), nb::arg("kind"), nb::arg("skipna"),
          "Median, mode or (integer) int64 sum of each block of (planes, *spatial); partial end blocks hold their cells.");
}

}  // namespace ndpool
