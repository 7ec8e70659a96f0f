// Softmax-weighted window pooling: each window's sum(w·x) / sum(w) with
// w = exp(l − max_window(l)) over its in-bounds cells (padded cells take no weight).
// SoftPool (Stergiou et al. 2021) is l = x; attention pooling (LIP, Gao et al. 2019) takes
// logits l of x's shape. Forward and backward read the Window's tables (_window.py) through
// a Plan and never re-derive geometry. Built once, in the host module (like select.cpp):
// its exp is straight-line arithmetic that the baseline target vectorises over a row of
// windows, and the loops run on the host's pool with the GIL released.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "plan.hpp"
#include "pool.hpp"
#include "reducers.hpp"
#include "thread_pool.hpp"

namespace nb = nanobind;

namespace ndpool {
namespace {

// exp(x) for float: Cody-Waite reduction x = n·ln2 + r (n by the round-to-nearest
// constant 1.5·2^23, which needs no floor) and Cephes' degree-6 polynomial for exp(r),
// about 1 ulp; below -87.3 it gives 0 (the weight of a cell that far under the window's
// max), and NaN stays NaN. libm's expf is a call per element, which no loop vectorises.
inline float exp_of(float x) {
    const float lo = -87.33654f, hi = 88.0f;
    float t = x >= lo ? x : lo;  // NaN takes lo here and is put back at the end
    t = t <= hi ? t : hi;
    const float n = (t * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = t - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    const float z = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * z + r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    float e = p * scale;
    e = x >= lo ? e : 0.0f;
    return x != x ? x : e;
}

inline double exp_of(double x) { return std::exp(x); }

// Input positions covered along one axis: for position i, the windows entries[begin[i]] ..
// entries[begin[i + 1] - 1] hold it (read off first/count/step, not re-derived).
struct Cover {
    std::vector<i64> begin, window;
    explicit Cover(const Axis &ax) : begin(static_cast<size_t>(ax.n_in) + 1, 0) {
        for (i64 o = 0; o < ax.n_out; ++o)
            for (i64 t = 0; t < ax.count[o]; ++t) ++begin[static_cast<size_t>(ax.first[o] + t * ax.step) + 1];
        for (i64 i = 0; i < ax.n_in; ++i) begin[i + 1] += begin[i];
        window.resize(static_cast<size_t>(begin[ax.n_in]));
        std::vector<i64> at(begin.begin(), begin.end() - 1);
        for (i64 o = 0; o < ax.n_out; ++o)
            for (i64 t = 0; t < ax.count[o]; ++t) window[at[ax.first[o] + t * ax.step]++] = o;
    }
};

// One call's arrays and geometry. `l` is null for SoftPool (the logits are x).
template <class T>
struct Soft {
    using A = typename Acc<T>::type;
    const T *x, *l;
    Geometry g;
    i64 block;  // windows along W per work unit: a row of windows cut to about 512 values

    bool soft() const { return l == nullptr; }
    const T *logits() const { return l ? l : x; }
    i64 row_of(i64 p, i64 d, i64 h) const {  // first value of input row (p, d, h)
        return ((p * g.axis[0].n_in + d) * g.axis[1].n_in + h) * g.axis[2].n_in * g.lanes;
    }
    i64 blocks() const { return (g.axis[2].n_out + block - 1) / block; }
    i64 units() const { return g.planes * g.axis[0].n_out * g.axis[1].n_out * blocks(); }
};

// Per-thread buffers: the gathered taps of a block of windows and their running stats.
template <class A>
struct Scratch {
    std::vector<A> taps_l, taps_x, m, s, n;
    static Scratch &get() {
        static thread_local Scratch scratch;
        return scratch;
    }
};

template <class A>
A *sized(std::vector<A> &v, i64 n) {
    if (static_cast<i64>(v.size()) < n) v.resize(static_cast<size_t>(n));
    return v.data();
}

// The loops over a block of R windows, apart so that restrict-qualified pointers let
// them vectorise without run-time overlap checks.
template <class A>
void max_into(const A *__restrict v, A *__restrict m, i64 R) {
    for (i64 j = 0; j < R; ++j) m[j] = v[j] > m[j] ? v[j] : m[j];  // a NaN's weight makes s NaN
}

template <bool Soft, class A>
void add_weights(const A *__restrict v, const A *__restrict xv, const A *__restrict m, A *__restrict s,
                 A *__restrict n, i64 R) {
    for (i64 j = 0; j < R; ++j) {
        const A e = exp_of(v[j] - m[j]);
        s[j] += e;
        // a masked slot of SoftPool holds -inf as its x too: weight 0 must add 0
        if constexpr (Soft) n[j] += e > A(0) ? e * xv[j] : A(0);
        else n[j] += e * xv[j];
    }
}

// One tap of R windows in the backward pass, from the tap's logits l and values xv and
// each window's m, c = dy / s and y: SoftPool's whole gradient into g; attention pooling's
// d/dx into l (read first) and d/dlogits into g.
template <bool Soft, class A>
void tap_grads(A *__restrict l, const A *__restrict xv, const A *__restrict m, const A *__restrict c,
               const A *__restrict y, A *__restrict g, i64 R) {
    for (i64 j = 0; j < R; ++j) {
        const A e = exp_of(l[j] - m[j]);
        if constexpr (Soft) {
            const A both = c[j] * e * (A(1) + l[j] - y[j]);  // NaN at a masked slot (l = -inf)
            g[j] = e > A(0) ? both : A(0);
        } else {
            const A to_x = c[j] * e;
            g[j] = to_x * (xv[j] - y[j]);
            l[j] = to_x;
        }
    }
}

// Windows [o0, o1) of output row (od, oh) of plane p: m (the max logit), s (the sum of
// weights) and n (the sum of weight times x), one per (window, lane), R = (o1 - o0)·lanes
// of each. The in-bounds taps are gathered first, one contiguous run of R per tap (the
// slots of windows with fewer taps masked), so that every loop after it runs over R.
template <class T, class A = typename Acc<T>::type>
void window_stats(const Soft<T> &k, i64 p, i64 od, i64 oh, i64 o0, i64 o1, A *m, A *s, A *n) {
    const Axis &D = k.g.axis[0], &H = k.g.axis[1], &W = k.g.axis[2];
    const i64 lanes = k.g.lanes, R = (o1 - o0) * lanes;
    i64 widest = 0;
    for (i64 ow = o0; ow < o1; ++ow) widest = std::max(widest, W.count[ow]);
    const i64 taps = D.count[od] * H.count[oh] * widest;
    auto &sc = Scratch<A>::get();
    A *tl = sized(sc.taps_l, taps * R);
    A *tx = k.soft() ? tl : sized(sc.taps_x, taps * R);
    const A none = -std::numeric_limits<A>::infinity();
    const T *L = k.logits();
    i64 t = 0;
    for (i64 td = 0; td < D.count[od]; ++td)
        for (i64 th = 0; th < H.count[oh]; ++th) {
            const i64 row = k.row_of(p, D.first[od] + td * D.step, H.first[oh] + th * H.step);
            for (i64 tw = 0; tw < widest; ++tw, ++t) {
                A *dl = tl + t * R, *dx = tx + t * R;
                if (lanes == 1) {  // channels-first: one value per window, a plain loop
                    const T *lrow = L + row + tw * W.step, *xrow = k.x + row + tw * W.step;
                    for (i64 ow = o0; ow < o1; ++ow) {
                        const bool in = tw < W.count[ow];
                        const i64 at = in ? W.first[ow] : 0;
                        dl[ow - o0] = in ? static_cast<A>(lrow[at]) : none;
                        if (!k.soft()) dx[ow - o0] = in ? static_cast<A>(xrow[at]) : A(0);
                    }
                    continue;
                }
                for (i64 ow = o0; ow < o1; ++ow) {
                    A *cl = dl + (ow - o0) * lanes, *cx = dx + (ow - o0) * lanes;
                    if (tw < W.count[ow]) {
                        const i64 at = row + (W.first[ow] + tw * W.step) * lanes;
                        for (i64 c = 0; c < lanes; ++c) cl[c] = static_cast<A>(L[at + c]);
                        if (!k.soft())
                            for (i64 c = 0; c < lanes; ++c) cx[c] = static_cast<A>(k.x[at + c]);
                    } else {
                        for (i64 c = 0; c < lanes; ++c) cl[c] = none;
                        if (!k.soft())
                            for (i64 c = 0; c < lanes; ++c) cx[c] = A(0);
                    }
                }
            }
        }
    for (i64 j = 0; j < R; ++j) m[j] = none, s[j] = A(0), n[j] = A(0);
    for (i64 u = 0; u < taps; ++u) max_into(tl + u * R, m, R);
    for (i64 u = 0; u < taps; ++u) {
        if (k.soft()) add_weights<true>(tl + u * R, tl + u * R, m, s, n, R);
        else add_weights<false>(tl + u * R, tx + u * R, m, s, n, R);
    }
}

// Unit u of Soft::units() as (plane, od, oh, first window, end window).
template <class T>
void unit_of(const Soft<T> &k, i64 u, i64 &p, i64 &od, i64 &oh, i64 &o0, i64 &o1) {
    const i64 blocks = k.blocks(), nh = k.g.axis[1].n_out, nd = k.g.axis[0].n_out;
    const i64 b = u % blocks;
    u /= blocks;
    oh = u % nh, u /= nh;
    od = u % nd, p = u / nd;
    o0 = b * k.block, o1 = std::min(k.g.axis[2].n_out, o0 + k.block);
}

template <class T>
i64 grain_of(const Soft<T> &k) {
    const i64 per_unit = std::max<i64>(1, k.block * k.g.lanes * k.g.volume());
    return std::max<i64>(1, 16384 / per_unit);
}

template <class T>
i64 out_at(const Soft<T> &k, i64 p, i64 od, i64 oh, i64 ow) {
    const Axis &D = k.g.axis[0], &H = k.g.axis[1], &W = k.g.axis[2];
    return (((p * D.n_out + od) * H.n_out + oh) * W.n_out + ow) * k.g.lanes;
}

template <class T>
void forward(const Soft<T> &k, T *y) {
    using A = typename Acc<T>::type;
    ThreadPool::instance().parallel_for(k.units(), grain_of(k), [&](int64_t begin, int64_t end) {
        auto &sc = Scratch<A>::get();
        for (i64 u = begin; u < end; ++u) {
            i64 p, od, oh, o0, o1;
            unit_of(k, u, p, od, oh, o0, o1);
            const i64 R = (o1 - o0) * k.g.lanes;
            A *m = sized(sc.m, R), *s = sized(sc.s, R), *n = sized(sc.n, R);
            window_stats(k, p, od, oh, o0, o1, m, s, n);
            T *out = y + out_at(k, p, od, oh, o0);
            for (i64 j = 0; j < R; ++j) out[j] = static_cast<T>(n[j] / s[j]);
        }
    });
}

// Backward. With c = dy / s per window and the weight e_i = exp(l_i − m) of cell i,
// d y / d x_i = e_i / s and d y / d l_i = e_i (x_i − y) / s; SoftPool's one gradient is
// their sum, e_i (1 + x_i − y) / s. Pass 1 keeps m, c and y of every window; pass 2 gives
// each input row the sum over the windows covering it, so no two threads write one cell.
template <class T>
void backward(const Soft<T> &k, const T *dy, T *dx, T *dl) {
    using A = typename Acc<T>::type;
    const Axis &D = k.g.axis[0], &H = k.g.axis[1], &W = k.g.axis[2];
    const i64 lanes = k.g.lanes, outs = k.g.planes * k.g.out_plane();
    // m, c and y of every window, from the buffer cache: fresh pages would cost more
    // (a fault and a zero fill each) than the pass that writes them
    const size_t bytes = 3 * static_cast<size_t>(outs) * sizeof(A);
    struct Held {
        void *p;
        size_t bytes;
        ~Held() { BufferCache::instance().give(p, bytes); }
    } held{BufferCache::instance().take(bytes), bytes};
    A *stat_m = static_cast<A *>(held.p), *stat_c = stat_m + outs, *stat_y = stat_c + outs;
    ThreadPool::instance().parallel_for(k.units(), grain_of(k), [&](int64_t begin, int64_t end) {
        auto &sc = Scratch<A>::get();
        for (i64 u = begin; u < end; ++u) {
            i64 p, od, oh, o0, o1;
            unit_of(k, u, p, od, oh, o0, o1);
            const i64 R = (o1 - o0) * lanes, at = out_at(k, p, od, oh, o0);
            A *m = stat_m + at, *s = sized(sc.s, R), *n = sized(sc.n, R);
            window_stats(k, p, od, oh, o0, o1, m, s, n);
            for (i64 j = 0; j < R; ++j) {
                stat_c[at + j] = static_cast<A>(dy[at + j]) / s[j];
                stat_y[at + j] = n[j] / s[j];
            }
        }
    });
    const Cover cover_d(D), cover_h(H);
    i64 widest = 0;
    for (i64 ow = 0; ow < W.n_out; ++ow) widest = std::max(widest, W.count[ow]);
    const i64 width = W.n_in * lanes, rows = D.n_in * H.n_in, R = W.n_out * lanes;
    const i64 grain = std::max<i64>(1, 16384 / std::max<i64>(1, R * widest));
    const T *L = k.logits();
    const A none = -std::numeric_limits<A>::infinity();
    ThreadPool::instance().parallel_for(k.g.planes * rows, grain, [&](int64_t begin, int64_t end) {
        auto &sc = Scratch<A>::get();
        for (i64 u = begin; u < end; ++u) {
            const i64 p = u / rows, d = (u % rows) / H.n_in, h = u % H.n_in;
            const i64 row = k.row_of(p, d, h);
            A *gx = sized(sc.m, 2 * width), *gl = gx + width;
            std::fill(gx, gx + 2 * width, A(0));
            A *vl = sized(sc.taps_l, 3 * R), *vx = vl + R, *g = vx + R;
            for (i64 a = cover_d.begin[d]; a < cover_d.begin[d + 1]; ++a)
                for (i64 b = cover_h.begin[h]; b < cover_h.begin[h + 1]; ++b) {
                    const i64 at = out_at(k, p, cover_d.window[a], cover_h.window[b], 0);
                    const A *m = stat_m + at, *c = stat_c + at, *yv = stat_y + at;
                    for (i64 tw = 0; tw < widest; ++tw) {
                        for (i64 ow = 0; lanes == 1 && ow < W.n_out; ++ow) {  // channels-first, plainly
                            const bool in = tw < W.count[ow];
                            const i64 cell = row + (in ? W.first[ow] + tw * W.step : 0);
                            vl[ow] = in ? static_cast<A>(L[cell]) : none;
                            if (!k.soft()) vx[ow] = in ? static_cast<A>(k.x[cell]) : A(0);
                        }
                        for (i64 ow = 0; lanes > 1 && ow < W.n_out; ++ow) {  // this tap of every window
                            A *cl = vl + ow * lanes, *cx = vx + ow * lanes;
                            if (tw < W.count[ow]) {
                                const i64 cell = row + (W.first[ow] + tw * W.step) * lanes;
                                for (i64 q = 0; q < lanes; ++q) cl[q] = static_cast<A>(L[cell + q]);
                                if (!k.soft())
                                    for (i64 q = 0; q < lanes; ++q) cx[q] = static_cast<A>(k.x[cell + q]);
                            } else {
                                for (i64 q = 0; q < lanes; ++q) cl[q] = none, cx[q] = A(0);
                            }
                        }
                        if (k.soft()) tap_grads<true>(vl, vx, m, c, yv, g, R);
                        else tap_grads<false>(vl, vx, m, c, yv, g, R);
                        if (lanes == 1) {  // channels-first: one value per window, added back
                            A *to_x = gx + tw * W.step, *to_l = gl + tw * W.step;
                            for (i64 ow = 0; ow < W.n_out; ++ow) {
                                if (tw >= W.count[ow]) continue;
                                if (k.soft()) {
                                    to_x[W.first[ow]] += g[ow];
                                } else {
                                    to_x[W.first[ow]] += vl[ow];
                                    to_l[W.first[ow]] += g[ow];
                                }
                            }
                            continue;
                        }
                        for (i64 ow = 0; ow < W.n_out; ++ow) {  // and added back to the row
                            if (tw >= W.count[ow]) continue;
                            const i64 cell = (W.first[ow] + tw * W.step) * lanes;
                            for (i64 q = 0; q < lanes; ++q) {
                                if (k.soft()) {
                                    gx[cell + q] += g[ow * lanes + q];
                                } else {
                                    gx[cell + q] += vl[ow * lanes + q];
                                    gl[cell + q] += g[ow * lanes + q];
                                }
                            }
                        }
                    }
                }
            for (i64 j = 0; j < width; ++j) dx[row + j] = static_cast<T>(gx[j]);
            if (!k.soft())
                for (i64 j = 0; j < width; ++j) dl[row + j] = static_cast<T>(gl[j]);
        }
    });
}

using Input = nb::ndarray<nb::ro, nb::device::cpu, nb::c_contig>;
using Array = nb::ndarray<nb::device::cpu, nb::c_contig>;

template <class F>
void by_float(const nb::dlpack::dtype &dt, F &&f) {
    using Code = nb::dlpack::dtype_code;
    if (static_cast<Code>(dt.code) == Code::Float) {
        if (dt.bits == 16) return f(half{});
        if (dt.bits == 32) return f(float{});
        if (dt.bits == 64) return f(double{});
    }
    throw nb::type_error("core: soft pooling takes float16, float32 or float64");
}

bool same_type(const nb::dlpack::dtype &a, const nb::dlpack::dtype &b) {
    return a.code == b.code && a.bits == b.bits && a.lanes == b.lanes;
}

// The canonical geometry of x: (planes, D, H, W) or, channels-last, (batch, D, H, W, C);
// checks that `other` (logits, or an output) has the shape `expect` and x's dtype.
Geometry geometry_of(const Input &x, bool channels_last, const Plan &plan) {
    if (x.ndim() != (channels_last ? 5u : 4u)) throw std::invalid_argument("core: x must be canonical");
    Geometry g;
    g.planes = static_cast<i64>(x.shape(0));
    g.lanes = channels_last ? static_cast<i64>(x.shape(4)) : 1;
    for (int a = 0; a < 3; ++a) {
        g.axis[a] = plan.axis[a];
        if (g.axis[a].per_plane) throw std::invalid_argument("core: soft pooling takes sliding windows");
        if (static_cast<i64>(x.shape(a + 1)) != g.axis[a].n_in)
            throw std::invalid_argument("core: x does not match the plan's input size");
    }
    return g;
}

template <class Arr>
void check_like(const Arr &a, const nb::dlpack::dtype &dt, i64 size, const char *what) {
    if (!same_type(a.dtype(), dt) || static_cast<i64>(a.size()) != size)
        throw std::invalid_argument(std::string("core: ") + what + " does not match x");
}

i64 block_of(const Geometry &g) { return std::max<i64>(1, 512 / std::max<i64>(1, g.lanes)); }

// y = soft pooling of x (logits: None for SoftPool, else an array of x's shape and dtype).
void soft_forward_op(Input x, nb::object logits, Array y, bool channels_last, const Plan &plan) {
    const Geometry g = geometry_of(x, channels_last, plan);
    const void *l = nullptr;
    Input keep;
    if (!logits.is_none()) {
        keep = nb::cast<Input>(logits);
        check_like(keep, x.dtype(), static_cast<i64>(x.size()), "logits");
        l = keep.data();
    }
    check_like(y, x.dtype(), g.planes * g.out_plane(), "y");
    if (x.size() == 0 || y.size() == 0) return;
    nb::gil_scoped_release release;
    by_float(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const Soft<T> k{static_cast<const T *>(x.data()), static_cast<const T *>(l), g, block_of(g)};
        forward(k, static_cast<T *>(y.data()));
    });
}

// dx (and dlogits, for attention pooling; None for SoftPool, whose one gradient is dx).
void soft_backward_op(Input x, nb::object logits, Input dy, Array dx, nb::object dlogits, bool channels_last,
                      const Plan &plan) {
    const Geometry g = geometry_of(x, channels_last, plan);
    const void *l = nullptr;
    void *dl = nullptr;
    Input keep;
    Array keep_dl;
    if (logits.is_none() != dlogits.is_none()) throw std::invalid_argument("core: give logits and dlogits together");
    if (!logits.is_none()) {
        keep = nb::cast<Input>(logits);
        keep_dl = nb::cast<Array>(dlogits);
        check_like(keep, x.dtype(), static_cast<i64>(x.size()), "logits");
        check_like(keep_dl, x.dtype(), static_cast<i64>(x.size()), "dlogits");
        l = keep.data(), dl = keep_dl.data();
    }
    check_like(dy, x.dtype(), g.planes * g.out_plane(), "dy");
    check_like(dx, x.dtype(), static_cast<i64>(x.size()), "dx");
    if (x.size() == 0) return;
    nb::gil_scoped_release release;
    by_float(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const Soft<T> k{static_cast<const T *>(x.data()), static_cast<const T *>(l), g, block_of(g)};
        backward(k, static_cast<const T *>(dy.data()), static_cast<T *>(dx.data()), static_cast<T *>(dl));
    });
}

}  // namespace

void bind_soft(nb::module_ &m) {
    m.def("soft_forward", &soft_forward_op, nb::arg("x"), nb::arg("logits").none(), nb::arg("y"),
          nb::arg("channels_last"), nb::arg("plan"),
          "Softmax-weighted pooling of canonical x into y: SoftPool when logits is None.");
    m.def("soft_backward", &soft_backward_op, nb::arg("x"), nb::arg("logits").none(), nb::arg("dy"),
          nb::arg("dx"), nb::arg("dlogits").none(), nb::arg("channels_last"), nb::arg("plan"),
          "Gradients of soft_forward: dx (SoftPool's whole gradient), and dlogits for attention pooling.");
}

}  // namespace ndpool
