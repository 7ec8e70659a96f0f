// Region-of-interest pooling with torchvision.ops' rules: RoIPool (Girshick 2015), the max
// over each box's bins of quantised cells, and RoIAlign (He et al. 2017), the mean of
// bilinear samples on a regular grid in each bin. Coordinates are computed in the
// element type (float for float16) in torchvision's order, so float32 and float64
// results are torchvision's to the bit. Forward passes run over boxes x channels;
// backward passes over the input's (image, channel) planes, each plane summing the
// boxes of its image in box order, so no two threads write one cell and the sums are
// deterministic. Built in the host module, run on its pool with the GIL released.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "geometry.hpp"
#include "reducers.hpp"
#include "thread_pool.hpp"

namespace nb = nanobind;

namespace ndpool {
namespace {

struct Shape {
    i64 images = 0, channels = 0, height = 0, width = 0, boxes = 0, out_h = 1, out_w = 1;
};

// ------------------------------------------------------------------- RoIAlign samples
// The bilinear samples of one box along one dim: per (bin, grid point) the two cells and
// their weights, or "invalid" for a sample more than one cell outside the map.
template <class A>
struct Samples {
    std::vector<int> low, high;
    std::vector<A> l, h;   // weight of high and of low
    std::vector<char> valid;
    int grid = 0;
};

template <class A>
struct AlignBox {
    Samples<A> y, x;
    A count = 1;
};

// torchvision's sample positions: start + bin*size + (i + .5) * size / grid, then clamped
// to the map as its bilinear_interpolate does.
template <class A>
void samples(Samples<A> &s, A start, A bin_size, int bins, int grid, i64 size) {
    s.grid = grid;
    const size_t n = static_cast<size_t>(bins) * static_cast<size_t>(std::max(grid, 0));
    s.low.assign(n, 0), s.high.assign(n, 0), s.l.assign(n, A(0)), s.h.assign(n, A(0)), s.valid.assign(n, 0);
    size_t at = 0;
    for (int b = 0; b < bins; ++b)
        for (int i = 0; i < grid; ++i, ++at) {
            A v = start + b * bin_size + static_cast<A>(i + .5f) * bin_size / static_cast<A>(grid);
            if (!(v >= -1.0 && v <= size)) continue;
            if (v <= 0) v = 0;
            int low = static_cast<int>(v), high;
            if (low >= size - 1) {
                high = low = static_cast<int>(size - 1);
                v = static_cast<A>(low);
            } else {
                high = low + 1;
            }
            const A lv = v - low;
            s.low[at] = low, s.high[at] = high, s.l[at] = lv, s.h[at] = static_cast<A>(1. - lv), s.valid[at] = 1;
        }
}

template <class A>
void align_box(AlignBox<A> &box, const A *r, A scale, const Shape &s, int sampling_ratio, bool aligned) {
    const A offset = aligned ? A(0.5) : A(0);
    const A start_w = r[0] * scale - offset, start_h = r[1] * scale - offset;
    const A end_w = r[2] * scale - offset, end_h = r[3] * scale - offset;
    A width = end_w - start_w, height = end_h - start_h;
    if (!aligned) {  // malformed boxes become 1x1
        width = std::max(width, A(1));
        height = std::max(height, A(1));
    }
    const A bin_h = height / static_cast<A>(s.out_h), bin_w = width / static_cast<A>(s.out_w);
    const int grid_h = sampling_ratio > 0 ? sampling_ratio : static_cast<int>(std::ceil(height / s.out_h));
    const int grid_w = sampling_ratio > 0 ? sampling_ratio : static_cast<int>(std::ceil(width / s.out_w));
    box.count = static_cast<A>(std::max(grid_h * grid_w, 1));
    samples(box.y, start_h, bin_h, static_cast<int>(s.out_h), grid_h, s.height);
    samples(box.x, start_w, bin_w, static_cast<int>(s.out_w), grid_w, s.width);
}

// One bilinear sample with its four cells and weights, shared by every channel of a box
// (torchvision's pre-calculation): an invalid sample reads cell 0 with zero weights, as
// there, so an inf in cell 0 still gives NaN.
template <class A>
struct Tap {
    i64 at[4];
    A w[4];
};

// A box's taps in bin order (ph, pw, iy, ix), when they fit in kMaxTaps; else the
// samples are combined per channel from the separable tables.
constexpr i64 kMaxTaps = i64(1) << 16;

template <class A>
bool box_taps(const AlignBox<A> &box, const Shape &s, std::vector<Tap<A>> &taps) {
    const i64 gh = std::max(box.y.grid, 0), gw = std::max(box.x.grid, 0);
    if (s.out_h * s.out_w * gh * gw > kMaxTaps) return false;
    taps.resize(static_cast<size_t>(s.out_h * s.out_w * gh * gw));
    size_t t = 0;
    for (i64 ph = 0; ph < s.out_h; ++ph)
        for (i64 pw = 0; pw < s.out_w; ++pw)
            for (i64 iy = 0; iy < gh; ++iy)
                for (i64 ix = 0; ix < gw; ++ix, ++t) {
                    const size_t a = static_cast<size_t>(ph * gh + iy), b = static_cast<size_t>(pw * gw + ix);
                    Tap<A> &tap = taps[t];
                    if (!(box.y.valid[a] && box.x.valid[b])) {
                        tap = Tap<A>{{0, 0, 0, 0}, {A(0), A(0), A(0), A(0)}};
                        continue;
                    }
                    const i64 r0 = box.y.low[a] * s.width, r1 = box.y.high[a] * s.width;
                    const i64 c0 = box.x.low[b], c1 = box.x.high[b];
                    const A hy = box.y.h[a], ly = box.y.l[a], hx = box.x.h[b], lx = box.x.l[b];
                    tap = Tap<A>{{r0 + c0, r0 + c1, r1 + c0, r1 + c1}, {hy * hx, hy * lx, ly * hx, ly * lx}};
                }
    return true;
}

template <class T, class A>
void align_forward(const T *x, const A *rois, const int64_t *batch, T *y, const Shape &s, A scale, int sampling_ratio,
                   bool aligned) {
    const i64 plane = s.height * s.width, bins = s.out_h * s.out_w;
    ThreadPool::instance().parallel_for(s.boxes * s.channels, 1, [&](int64_t begin, int64_t end) {
        AlignBox<A> box;
        std::vector<Tap<A>> taps;
        bool tabled = false;
        i64 current = -1;
        for (int64_t i = begin; i < end; ++i) {
            const i64 k = i / s.channels, c = i % s.channels;
            if (k != current) {
                align_box(box, rois + 4 * k, scale, s, sampling_ratio, aligned), current = k;
                tabled = box_taps(box, s, taps);
            }
            const T *in = x + (batch[k] * s.channels + c) * plane;
            T *out = y + i * bins;
            const int gh = std::max(box.y.grid, 0), gw = std::max(box.x.grid, 0);
            const Tap<A> *tap = taps.data();
            for (i64 ph = 0; ph < s.out_h; ++ph)
                for (i64 pw = 0; pw < s.out_w; ++pw) {
                    A total = 0;
                    if (tabled) {
                        for (int n = 0; n < gh * gw; ++n, ++tap)
                            total += tap->w[0] * static_cast<A>(in[tap->at[0]]) + tap->w[1] * static_cast<A>(in[tap->at[1]]) +
                                     tap->w[2] * static_cast<A>(in[tap->at[2]]) + tap->w[3] * static_cast<A>(in[tap->at[3]]);
                        out[ph * s.out_w + pw] = static_cast<T>(total / box.count);
                        continue;
                    }
                    for (int iy = 0; iy < gh; ++iy) {
                        const size_t a = static_cast<size_t>(ph * gh + iy);
                        for (int ix = 0; ix < gw; ++ix) {
                            const size_t b = static_cast<size_t>(pw * gw + ix);
                            const A hy = box.y.h[a], ly = box.y.l[a], hx = box.x.h[b], lx = box.x.l[b];
                            const A w1 = hy * hx, w2 = hy * lx, w3 = ly * hx, w4 = ly * lx;
                            const bool ok = box.y.valid[a] && box.x.valid[b];
                            const i64 r0 = ok ? box.y.low[a] * s.width : 0, r1 = ok ? box.y.high[a] * s.width : 0;
                            const i64 c0 = ok ? box.x.low[b] : 0, c1 = ok ? box.x.high[b] : 0;
                            const A z = 0;
                            total += (ok ? w1 : z) * static_cast<A>(in[r0 + c0]) + (ok ? w2 : z) * static_cast<A>(in[r0 + c1]) +
                                     (ok ? w3 : z) * static_cast<A>(in[r1 + c0]) + (ok ? w4 : z) * static_cast<A>(in[r1 + c1]);
                        }
                    }
                    out[ph * s.out_w + pw] = static_cast<T>(total / box.count);
                }
        }
    });
}

// The boxes of each image in box order: order[starts[n] .. starts[n + 1]).
void by_image(const int64_t *batch, const Shape &s, std::vector<i64> &order, std::vector<i64> &starts) {
    starts.assign(static_cast<size_t>(s.images + 1), 0);
    for (i64 k = 0; k < s.boxes; ++k) ++starts[static_cast<size_t>(batch[k] + 1)];
    for (i64 n = 0; n < s.images; ++n) starts[n + 1] += starts[n];
    std::vector<i64> next(starts.begin(), starts.end() - 1);
    order.resize(static_cast<size_t>(s.boxes));
    for (i64 k = 0; k < s.boxes; ++k) order[static_cast<size_t>(next[batch[k]]++)] = k;
}

template <class T, class A>
void align_backward(const T *dy, const A *rois, const int64_t *batch, T *dx, const Shape &s, A scale, int sampling_ratio,
                    bool aligned) {
    const i64 plane = s.height * s.width, bins = s.out_h * s.out_w;
    std::vector<i64> order, starts;
    by_image(batch, s, order, starts);
    ThreadPool::instance().parallel_for(s.images * s.channels, 1, [&](int64_t begin, int64_t end) {
        AlignBox<A> box;
        std::vector<A> sum(static_cast<size_t>(plane));
        for (int64_t i = begin; i < end; ++i) {
            const i64 n = i / s.channels, c = i % s.channels;
            std::fill(sum.begin(), sum.end(), A(0));
            for (i64 j = starts[n]; j < starts[n + 1]; ++j) {
                const i64 k = order[j];
                align_box(box, rois + 4 * k, scale, s, sampling_ratio, aligned);
                const int gh = std::max(box.y.grid, 0), gw = std::max(box.x.grid, 0);
                const A count = static_cast<A>(box.y.grid * box.x.grid);  // torchvision's backward count
                const T *g = dy + (k * s.channels + c) * bins;
                for (i64 ph = 0; ph < s.out_h; ++ph)
                    for (i64 pw = 0; pw < s.out_w; ++pw) {
                        const A grad = static_cast<A>(g[ph * s.out_w + pw]);
                        for (int iy = 0; iy < gh; ++iy) {
                            const size_t a = static_cast<size_t>(ph * gh + iy);
                            if (!box.y.valid[a]) continue;
                            const A hy = box.y.h[a], ly = box.y.l[a];
                            const i64 r0 = box.y.low[a] * s.width, r1 = box.y.high[a] * s.width;
                            for (int ix = 0; ix < gw; ++ix) {
                                const size_t b = static_cast<size_t>(pw * gw + ix);
                                if (!box.x.valid[b]) continue;
                                const A hx = box.x.h[b], lx = box.x.l[b];
                                const i64 c0 = box.x.low[b], c1 = box.x.high[b];
                                sum[r0 + c0] += grad * (hy * hx) / count;
                                sum[r0 + c1] += grad * (hy * lx) / count;
                                sum[r1 + c0] += grad * (ly * hx) / count;
                                sum[r1 + c1] += grad * (ly * lx) / count;
                            }
                        }
                    }
            }
            T *out = dx + i * plane;
            for (i64 p = 0; p < plane; ++p) out[p] = static_cast<T>(sum[p]);
        }
    });
}

// ------------------------------------------------------------------------- RoIPool
template <class T, class A>
void pool_forward(const T *x, const A *rois, const int64_t *batch, T *y, int64_t *argmax, const Shape &s, A scale) {
    const i64 plane = s.height * s.width, bins = s.out_h * s.out_w;
    ThreadPool::instance().parallel_for(s.boxes * s.channels, 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
            const i64 k = i / s.channels, c = i % s.channels;
            const A *r = rois + 4 * k;
            const int start_w = static_cast<int>(std::round(r[0] * scale)), start_h = static_cast<int>(std::round(r[1] * scale));
            const int end_w = static_cast<int>(std::round(r[2] * scale)), end_h = static_cast<int>(std::round(r[3] * scale));
            const int width = std::max(end_w - start_w + 1, 1), height = std::max(end_h - start_h + 1, 1);
            const A bin_h = static_cast<A>(height) / static_cast<A>(s.out_h);
            const A bin_w = static_cast<A>(width) / static_cast<A>(s.out_w);
            const T *in = x + (batch[k] * s.channels + c) * plane;
            for (i64 ph = 0; ph < s.out_h; ++ph) {
                const int h0 = static_cast<int>(std::floor(static_cast<A>(ph) * bin_h));
                const int h1 = static_cast<int>(std::ceil(static_cast<A>(ph + 1) * bin_h));
                const i64 hs = std::min<i64>(std::max<i64>(h0 + start_h, 0), s.height);
                const i64 he = std::min<i64>(std::max<i64>(h1 + start_h, 0), s.height);
                for (i64 pw = 0; pw < s.out_w; ++pw) {
                    const int w0 = static_cast<int>(std::floor(static_cast<A>(pw) * bin_w));
                    const int w1 = static_cast<int>(std::ceil(static_cast<A>(pw + 1) * bin_w));
                    const i64 ws = std::min<i64>(std::max<i64>(w0 + start_w, 0), s.width);
                    const i64 we = std::min<i64>(std::max<i64>(w1 + start_w, 0), s.width);
                    // an empty bin is 0 with no winner; otherwise the first strict max
                    // above -FLT_MAX (a NaN never wins), as torchvision
                    A best = (he <= hs || we <= ws) ? A(0) : static_cast<A>(-FLT_MAX);
                    int64_t where = -1;
                    for (i64 h = hs; h < he; ++h) {
                        const T *row = in + h * s.width;
                        for (i64 w = ws; w < we; ++w) {  // branch-free: selects, not jumps
                            const A v = static_cast<A>(row[w]);
                            const bool take = v > best;
                            best = take ? v : best;
                            where = take ? h * s.width + w : where;
                        }
                    }
                    y[i * bins + ph * s.out_w + pw] = static_cast<T>(best);
                    argmax[i * bins + ph * s.out_w + pw] = where;
                }
            }
        }
    });
}

template <class T, class A>
void pool_backward(const T *dy, const int64_t *argmax, const int64_t *batch, T *dx, const Shape &s) {
    const i64 plane = s.height * s.width, bins = s.out_h * s.out_w;
    std::vector<i64> order, starts;
    by_image(batch, s, order, starts);
    ThreadPool::instance().parallel_for(s.images * s.channels, 1, [&](int64_t begin, int64_t end) {
        std::vector<A> sum(static_cast<size_t>(plane));
        for (int64_t i = begin; i < end; ++i) {
            const i64 n = i / s.channels, c = i % s.channels;
            std::fill(sum.begin(), sum.end(), A(0));
            for (i64 j = starts[n]; j < starts[n + 1]; ++j) {
                const i64 at = (order[j] * s.channels + c) * bins;
                for (i64 b = 0; b < bins; ++b)
                    if (argmax[at + b] >= 0) sum[argmax[at + b]] += static_cast<A>(dy[at + b]);
            }
            T *out = dx + i * plane;
            for (i64 p = 0; p < plane; ++p) out[p] = static_cast<T>(sum[p]);
        }
    });
}

// ------------------------------------------------------------------------ bindings
using Input = nb::ndarray<nb::ro, nb::device::cpu, nb::c_contig>;
using Output = nb::ndarray<nb::device::cpu, nb::c_contig>;
using Batch = nb::ndarray<const int64_t, nb::ndim<1>, nb::device::cpu, nb::c_contig>;
using Index = nb::ndarray<int64_t, nb::device::cpu, nb::c_contig>;
using ConstIndex = nb::ndarray<const int64_t, nb::device::cpu, nb::c_contig>;

template <class F>
void by_float(const nb::dlpack::dtype &dt, F &&f) {
    using Code = nb::dlpack::dtype_code;
    if (static_cast<Code>(dt.code) == Code::Float) {
        if (dt.bits == 16) return f(half{}, float{});
        if (dt.bits == 32) return f(float{}, float{});
        if (dt.bits == 64) return f(double{}, double{});
    }
    throw nb::type_error("core: RoI pooling takes float16, float32 or float64");
}

// map: the (N, C, H, W) input or its gradient; per: the (K, C, PH, PW) output or its
// gradient; boxes: (K, 4) (x1, y1, x2, y2) in the accumulator type (float32 for float16),
// batch: (K,) image of each box, checked by the caller to lie in [0, N).
template <class Map, class Per>
Shape shape_of(const Map &map, const Per &per, const Batch &batch) {
    if (map.ndim() != 4 || per.ndim() != 4 || per.shape(0) != batch.shape(0) || per.shape(1) != map.shape(1))
        throw std::invalid_argument("core: RoI pooling expects (N, C, H, W), (K,) and (K, C, PH, PW)");
    Shape s;
    s.images = static_cast<i64>(map.shape(0)), s.channels = static_cast<i64>(map.shape(1));
    s.height = static_cast<i64>(map.shape(2)), s.width = static_cast<i64>(map.shape(3));
    s.boxes = static_cast<i64>(batch.shape(0));
    s.out_h = static_cast<i64>(per.shape(2)), s.out_w = static_cast<i64>(per.shape(3));
    for (i64 k = 0; k < s.boxes; ++k)
        if (batch.data()[k] < 0 || batch.data()[k] >= s.images)
            throw std::invalid_argument("core: a box's image is out of range");
    return s;
}

template <class A>
void check_boxes(const Input &boxes, const Shape &s) {
    if (boxes.dtype() != nb::dtype<A>()) throw nb::type_error("core: boxes must be in the accumulator type");
    if (boxes.ndim() != 2 || boxes.shape(1) != 4 || static_cast<i64>(boxes.shape(0)) != s.boxes)
        throw std::invalid_argument("core: boxes must have shape (K, 4)");
}

void roi_align_op(Input x, Input boxes, Batch batch, double scale, int sampling_ratio, bool aligned, Output y) {
    if (x.dtype() != y.dtype()) throw nb::type_error("core: roi_align's x and y dtypes differ");
    const Shape s = shape_of(x, y, batch);
    if (y.size() == 0) return;
    by_float(x.dtype(), [&](auto t, auto a) {
        using T = decltype(t);
        using A = decltype(a);
        check_boxes<A>(boxes, s);
        nb::gil_scoped_release release;
        align_forward<T, A>(static_cast<const T *>(x.data()), static_cast<const A *>(boxes.data()), batch.data(),
                            static_cast<T *>(y.data()), s, static_cast<A>(scale), sampling_ratio, aligned);
    });
}

void roi_align_backward_op(Input dy, Input boxes, Batch batch, double scale, int sampling_ratio, bool aligned, Output dx) {
    if (dx.dtype() != dy.dtype()) throw nb::type_error("core: roi_align's dy and dx dtypes differ");
    const Shape s = shape_of(dx, dy, batch);
    if (dx.size() == 0) return;
    by_float(dy.dtype(), [&](auto t, auto a) {
        using T = decltype(t);
        using A = decltype(a);
        check_boxes<A>(boxes, s);
        nb::gil_scoped_release release;
        align_backward<T, A>(static_cast<const T *>(dy.data()), static_cast<const A *>(boxes.data()), batch.data(),
                             static_cast<T *>(dx.data()), s, static_cast<A>(scale), sampling_ratio, aligned);
    });
}

void roi_pool_op(Input x, Input boxes, Batch batch, double scale, Output y, Index argmax) {
    if (x.dtype() != y.dtype()) throw nb::type_error("core: roi_pool's x and y dtypes differ");
    const Shape s = shape_of(x, y, batch);
    if (argmax.size() != y.size()) throw std::invalid_argument("core: roi_pool's argmax must have y's shape");
    if (y.size() == 0) return;
    by_float(x.dtype(), [&](auto t, auto a) {
        using T = decltype(t);
        using A = decltype(a);
        check_boxes<A>(boxes, s);
        nb::gil_scoped_release release;
        pool_forward<T, A>(static_cast<const T *>(x.data()), static_cast<const A *>(boxes.data()), batch.data(),
                           static_cast<T *>(y.data()), argmax.data(), s, static_cast<A>(scale));
    });
}

void roi_pool_backward_op(Input dy, ConstIndex argmax, Batch batch, Output dx) {
    if (dx.dtype() != dy.dtype()) throw nb::type_error("core: roi_pool's dy and dx dtypes differ");
    const Shape s = shape_of(dx, dy, batch);
    if (argmax.size() != dy.size()) throw std::invalid_argument("core: roi_pool's argmax must have dy's shape");
    const i64 plane = s.height * s.width;
    for (size_t i = 0; i < argmax.size(); ++i)
        if (argmax.data()[i] >= plane) throw std::invalid_argument("core: roi_pool's argmax leaves the plane");
    if (dx.size() == 0) return;
    by_float(dy.dtype(), [&](auto t, auto a) {
        using T = decltype(t);
        using A = decltype(a);
        nb::gil_scoped_release release;
        pool_backward<T, A>(static_cast<const T *>(dy.data()), argmax.data(), batch.data(), static_cast<T *>(dx.data()), s);
    });
}

}  // namespace

void bind_roi(nb::module_ &m) {
    m.def("roi_align", &roi_align_op, nb::arg("x"), nb::arg("boxes"), nb::arg("batch"), nb::arg("spatial_scale"),
          nb::arg("sampling_ratio"), nb::arg("aligned"), nb::arg("y"));
    m.def("roi_align_backward", &roi_align_backward_op, nb::arg("dy"), nb::arg("boxes"), nb::arg("batch"),
          nb::arg("spatial_scale"), nb::arg("sampling_ratio"), nb::arg("aligned"), nb::arg("dx"));
    m.def("roi_pool", &roi_pool_op, nb::arg("x"), nb::arg("boxes"), nb::arg("batch"), nb::arg("spatial_scale"),
          nb::arg("y"), nb::arg("argmax"));
    m.def("roi_pool_backward", &roi_pool_backward_op, nb::arg("dy"), nb::arg("argmax"), nb::arg("batch"), nb::arg("dx"));
}

}  // namespace ndpool
