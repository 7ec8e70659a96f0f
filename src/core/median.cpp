// Median pooling: the lower median of each window's in-bounds cells and its cell's flat
// per-plane index. The windows are the Window's tap tables (first, count, step per dim,
// from _window.py); nothing here derives geometry. A window's cells are gathered in scan
// order and the median found by selection (ranks counted in small windows, else
// std::nth_element; no sort per window); among cells equal to the median the index is
// the one a stable sort puts at the median's place, and a NaN wins its window (the
// first NaN): torch.median's choices on CPU.
// Built in the host module, as select.cpp, and run on the host's pool with the GIL
// released.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "geometry.hpp"
#include "host_dtypes.hpp"
#include "reducers.hpp"
#include "thread_pool.hpp"

namespace nb = nanobind;

namespace ndpool {
namespace {

// One spatial dim's windows: window o reads cells first[o] + t*step for t < count[o].
struct Taps {
    const i64 *first = nullptr, *count = nullptr;
    i64 step = 1, out = 1, in = 1;
};

template <class T>
bool is_nan(T v) {
    if constexpr (std::is_floating_point_v<T> || std::is_same_v<T, half>) return v != v;
    return false;
}

// The position in cells[0, n) of the lower median under a stable order: the cell that
// sorts k-th when equal values keep their scan order, k = (n - 1) / 2 (torch.median's
// choice among equal cells). Small windows (the common 3x3, 5x5) rank every cell by
// counting, with no data-dependent branch but the final one; larger ones select the
// value with nth_element on a copy and then count its occurrences.
template <class T>
size_t median_of(const T *cells, size_t n, T *work) {
    const size_t k = (n - 1) / 2;  // the lower median of an even count
    if (n <= 32) {
        for (size_t i = 0;; ++i) {
            const T v = cells[i];
            size_t rank = 0;  // cells sorting before cell i: smaller, or equal and earlier
            for (size_t j = 0; j < i; ++j) rank += !(v < cells[j]);
            for (size_t j = i + 1; j < n; ++j) rank += cells[j] < v;
            if (rank == k) return i;
        }
    }
    std::copy(cells, cells + n, work);
    std::nth_element(work, work + k, work + n);
    const T median = work[k];
    size_t before = static_cast<size_t>(std::count_if(work, work + k, [&](T v) { return v < median; }));
    size_t pick = 0;  // the (k - before)-th cell holding the median, in scan order
    for (;; ++pick)
        if (cells[pick] == median && before++ == k) return pick;
}

template <class T>
void median_windows(const T *x, T *y, int64_t *index, i64 planes, const Taps (&t)[3]) {
    const i64 out_w = t[2].out, rows = planes * t[0].out * t[1].out;
    const i64 in_plane = t[0].in * t[1].in * t[2].in;
    i64 most = 1;  // the largest window, for the buffers
    for (const Taps &a : t) most *= *std::max_element(a.count, a.count + a.out);
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<i64>(most * out_w, 1));
    // one task per output row (plane, od, oh): the row's window rows are found once
    ThreadPool::instance().parallel_for(rows, grain, [&](int64_t begin, int64_t end) {
        std::vector<T> cells(static_cast<size_t>(most)), work(static_cast<size_t>(most));
        std::vector<i64> where(static_cast<size_t>(most));
        for (int64_t r = begin; r < end; ++r) {
            const i64 oh = r % t[1].out, od = (r / t[1].out) % t[0].out, p = r / (t[1].out * t[0].out);
            const T *plane = x + p * in_plane;
            for (i64 ow = 0; ow < out_w; ++ow) {
                size_t n = 0;
                bool nan = false;
                for (i64 a = 0; a < t[0].count[od] && !nan; ++a) {
                    const i64 d = t[0].first[od] + a * t[0].step;
                    for (i64 b = 0; b < t[1].count[oh] && !nan; ++b) {
                        const i64 row = (d * t[1].in + t[1].first[oh] + b * t[1].step) * t[2].in + t[2].first[ow];
                        for (i64 c = 0; c < t[2].count[ow]; ++c) {
                            const i64 at = row + c * t[2].step;
                            const T v = plane[at];
                            if (is_nan(v)) {  // the first NaN in scan order wins the window
                                cells[0] = v, where[0] = at, n = 1, nan = true;
                                break;
                            }
                            cells[n] = v, where[n] = at, ++n;
                        }
                    }
                }
                const size_t pick = nan ? 0 : median_of(cells.data(), n, work.data());
                const i64 o = r * out_w + ow;
                y[o] = cells[pick];
                if (index) index[o] = where[pick];
            }
        }
    });
}

using Input = nb::ndarray<nb::ro, nb::device::cpu, nb::c_contig>;
using Output = nb::ndarray<nb::device::cpu, nb::c_contig>;
using Table = nb::ndarray<const int64_t, nb::ndim<1>, nb::device::cpu, nb::c_contig>;

// x: (planes, D, H, W); axes: three (first, count, step) of one window row per dim, each
// window with at least one tap; y: (planes, oD, oH, oW) of x's dtype; index: the same
// shape in int64, or None.
void median_pool(Input x, nb::tuple axes, Output y, nb::object index) {
    if (x.ndim() != 4 || y.ndim() != 4 || nb::len(axes) != 3 || x.dtype() != y.dtype())
        throw std::invalid_argument("core: median_pool expects canonical (planes, D, H, W) arrays");
    Taps t[3];
    std::vector<Table> keep;
    for (int a = 0; a < 3; ++a) {
        nb::tuple axis = nb::cast<nb::tuple>(axes[a]);
        keep.push_back(nb::cast<Table>(axis[0]));
        keep.push_back(nb::cast<Table>(axis[1]));
        const Table &first = keep[keep.size() - 2], &count = keep.back();
        t[a].first = first.data(), t[a].count = count.data(), t[a].step = nb::cast<i64>(axis[2]);
        t[a].out = static_cast<i64>(first.shape(0)), t[a].in = static_cast<i64>(x.shape(a + 1));
        if (count.shape(0) != first.shape(0) || t[a].out != static_cast<i64>(y.shape(a + 1)))
            throw std::invalid_argument("core: median_pool's tables do not match the output");
        for (i64 o = 0; o < t[a].out; ++o)
            if (t[a].count[o] < 1 || t[a].first[o] < 0 || t[a].first[o] + (t[a].count[o] - 1) * t[a].step >= t[a].in)
                throw std::invalid_argument("core: median_pool's window leaves the input");
    }
    if (y.shape(0) != x.shape(0)) throw std::invalid_argument("core: median_pool's planes differ");
    int64_t *where = nullptr;
    Output idx;
    if (!index.is_none()) {
        idx = nb::cast<Output>(index);
        if (idx.dtype() != nb::dtype<int64_t>() || idx.size() != y.size())
            throw std::invalid_argument("core: median_pool's index must be int64 of y's shape");
        where = static_cast<int64_t *>(idx.data());
    }
    if (y.size() == 0) return;
    const i64 planes = static_cast<i64>(x.shape(0));
    nb::gil_scoped_release release;
    by_dtype(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        median_windows<T>(static_cast<const T *>(x.data()), static_cast<T *>(y.data()), where, planes, t);
    });
}

}  // namespace

void bind_median(nb::module_ &m) {
    m.def("median_pool", &median_pool, nb::arg("x"), nb::arg("axes"), nb::arg("y"), nb::arg("index").none(),
          "Lower median of each window's taps and its cell under a stable order (a NaN wins).");
}

}  // namespace ndpool
