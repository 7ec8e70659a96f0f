// Backward rules over the same tap tables as the forward engine: scatter to the winner
// (max/min), spread over the window (sums and means, as transposed separable passes),
// share among tied winners (ties="split"); and max-unpooling.
#pragma once

#include "engine.hpp"

namespace ndpool {

// Relative flat offset (in cells) of every tap of the full kernel from the window start.
inline std::vector<i64> tap_offsets(const Geometry &g) {
    const Axis &D = g.axis[0], &H = g.axis[1], &W = g.axis[2];
    std::vector<i64> rel(static_cast<size_t>(g.volume()));
    i64 k = 0;
    for (i64 kd = 0; kd < D.kernel; ++kd)
        for (i64 kh = 0; kh < H.kernel; ++kh)
            for (i64 kw = 0; kw < W.kernel; ++kw)
                rel[k++] = (kd * D.step * H.n_in + kh * H.step) * W.n_in + kw * W.step;
    return rel;
}

// Calls body(o, cell_of_window_start) for every output position of plane p.
template <class F>
inline void each_window(const Geometry &g, i64 p, F &&body) {
    const Axis &D = g.axis[0], &H = g.axis[1], &W = g.axis[2];
    i64 o = 0;
    for (i64 od = 0; od < D.n_out; ++od) {
        const i64 sd = D.start(p, od);
        for (i64 oh = 0; oh < H.n_out; ++oh) {
            const i64 sh = H.start(p, oh);
            for (i64 ow = 0; ow < W.n_out; ++ow, ++o)
                body(o, (sd * H.n_in + sh) * W.n_in + W.start(p, ow), od, oh, ow);
        }
    }
}

// Cells that no window covers, per dim (disjoint windows write every other cell).
struct Coverage {
    std::vector<char> covered[3];
    std::vector<i64> gaps_w;  // uncovered positions along W
    bool all = true;

    Coverage() = default;
    explicit Coverage(const Geometry &g) {
        for (int a = 0; a < 3; ++a) {
            const Axis &ax = g.axis[a];
            covered[a].assign(static_cast<size_t>(ax.n_in), 0);
            for (i64 o = 0; o < ax.n_out; ++o)
                for (i64 t = 0; t < ax.count[o]; ++t) covered[a][ax.first[o] + t * ax.step] = 1;
            for (char c : covered[a]) all = all && c;
        }
        for (i64 w = 0; w < g.axis[2].n_in; ++w)
            if (!covered[2][w]) gaps_w.push_back(w);
    }

    // Zero lanes [l0, l1) of the uncovered cells of one plane.
    template <class V>
    void zero(const Geometry &g, V *dx, i64 l0, i64 l1) const {
        if (all) return;
        const i64 H = g.axis[1].n_in, W = g.axis[2].n_in, lanes = g.lanes;
        for (i64 d = 0; d < g.axis[0].n_in; ++d)
            for (i64 h = 0; h < H; ++h) {
                V *row = dx + (d * H + h) * W * lanes;
                if (!(covered[0][d] && covered[1][h])) {
                    for (i64 w = 0; w < W; ++w)
                        for (i64 l = l0; l < l1; ++l) row[w * lanes + l] = V(0);
                    continue;
                }
                for (i64 w : gaps_w)
                    for (i64 l = l0; l < l1; ++l) row[w * lanes + l] = V(0);
            }
    }
};

// Max/min backward, ties to the first winner: dx[winner] += dy. `arg` holds compact
// kernel offsets (I = uint8/uint16/int32) or flat per-plane indices (I = int64, Flat).
template <class T, class I, bool Flat>
void scatter(const T *dy, const I *arg, T *dx, const Geometry &g) {
    using A = typename Acc<T>::type;
    const std::vector<i64> rel = Flat ? std::vector<i64>() : tap_offsets(g);
    bool disjoint = !Flat;
    for (int a = 0; a < 3; ++a) disjoint = disjoint && g.axis[a].disjoint();
    const Coverage coverage = disjoint ? Coverage(g) : Coverage();
    const i64 lanes = g.lanes, in_plane = g.in_plane(), out_plane = g.out_plane();
    for_planes(g, [&](i64 p, i64 l0, i64 l1) {
        T *dxp = dx + p * in_plane;
        const T *dyp = dy + p * out_plane;
        const I *ap = arg + p * out_plane;
        if (disjoint) {  // each cell in at most one window: write it once, no zero fill
            const Axis &D = g.axis[0], &H = g.axis[1], &W = g.axis[2];
            coverage.zero(g, dxp, l0, l1);
            each_window(g, p, [&](i64 o, i64, i64 od, i64 oh, i64 ow) {
                for (i64 td = 0; td < D.count[od]; ++td)
                    for (i64 th = 0; th < H.count[oh]; ++th)
                        for (i64 tw = 0; tw < W.count[ow]; ++tw) {
                            const i64 k = ((D.skip[od] + td) * H.kernel + H.skip[oh] + th) * W.kernel +
                                          W.skip[ow] + tw;
                            const i64 cell = ((D.first[od] + td * D.step) * H.n_in + H.first[oh] +
                                              th * H.step) * W.n_in + W.first[ow] + tw * W.step;
                            for (i64 l = l0; l < l1; ++l)
                                dxp[cell * lanes + l] =
                                    static_cast<i64>(ap[o * lanes + l]) == k ? dyp[o * lanes + l] : T(0);
                        }
            });
            return;
        }
        A *acc = std::is_same<A, T>::value ? reinterpret_cast<A *>(dxp)
                                           : sized(Scratch<A>::get().a, in_plane);
        for (i64 c = 0; c < in_plane / lanes; ++c)
            for (i64 l = l0; l < l1; ++l) acc[c * lanes + l] = A(0);
        if constexpr (Flat) {
            for (i64 o = 0; o < out_plane / lanes; ++o)
                for (i64 l = l0; l < l1; ++l)
                    acc[ap[o * lanes + l] * lanes + l] += static_cast<A>(dyp[o * lanes + l]);
        } else {
            each_window(g, p, [&](i64 o, i64 start, i64, i64, i64) {
                for (i64 l = l0; l < l1; ++l)
                    acc[(start + rel[ap[o * lanes + l]]) * lanes + l] += static_cast<A>(dyp[o * lanes + l]);
            });
        }
        if constexpr (!std::is_same<A, T>::value)
            for (i64 c = 0; c < in_plane / lanes; ++c)
                for (i64 l = l0; l < l1; ++l) dxp[c * lanes + l] = static_cast<T>(acc[c * lanes + l]);
    });
}

// Transposed pass: in [outer][n_out][inner] -> out [outer][n_in][inner], each window's
// value added to all its taps.
template <class A>
void unpass(const A *in, A *out, i64 outer, i64 n_in, i64 n_out, i64 inner, const i64 *first,
            const i64 *count, i64 step) {
    std::fill(out, out + outer * n_in * inner, A(0));
    for (i64 q = 0; q < outer; ++q)
        for (i64 o = 0; o < n_out; ++o) {
            const A *src = in + (q * n_out + o) * inner;
            for (i64 t = 0; t < count[o]; ++t) {
                A *dst = out + (q * n_in + first[o] + t * step) * inner;
                for (i64 i = 0; i < inner; ++i) dst[i] += src[i];
            }
        }
}

// Mean backward: dy / divisor spread over every window's in-bounds taps.
template <class T>
void spread(const T *dy, const double *divisor, T *dx, const Geometry &g) {
    using A = typename Acc<T>::type;
    const i64 lanes = g.lanes, in_plane = g.in_plane(), out_plane = g.out_plane();
    parallel_for(g.planes, std::max<i64>(1, 16384 / std::max<i64>(in_plane, 1)), [&](i64 begin, i64 end) {
        auto &sc = Scratch<A>::get();
        for (i64 p = begin; p < end; ++p) {
            A *cur = sized(sc.a, std::max(in_plane, out_plane));
            const T *dyp = dy + p * out_plane;
            for (i64 o = 0; o < out_plane / lanes; ++o) {
                const A dv = static_cast<A>(divisor[o]);
                for (i64 l = 0; l < lanes; ++l) cur[o * lanes + l] = static_cast<A>(dyp[o * lanes + l]) / dv;
            }
            i64 sizes[3] = {g.axis[0].n_out, g.axis[1].n_out, g.axis[2].n_out};
            bool flip = false;
            for (int a = 0; a < 3; ++a) {
                const Axis &ax = g.axis[a];
                if (ax.trivial) continue;
                i64 outer = 1, inner = lanes;
                for (int b = 0; b < a; ++b) outer *= sizes[b];
                for (int b = a + 1; b < 3; ++b) inner *= sizes[b];
                A *next = sized(flip ? sc.a : sc.b, outer * ax.n_in * inner);
                unpass(cur, next, outer, ax.n_in, ax.n_out, inner, ax.first, ax.count, ax.step);
                cur = next, sizes[a] = ax.n_in, flip = !flip;
            }
            T *dxp = dx + p * in_plane;
            for (i64 i = 0; i < in_plane; ++i) dxp[i] = static_cast<T>(cur[i]);
        }
    });
}

// ties="split": each window's dy shared equally among all its cells equal to the winner.
template <class R, class T>
void split_ties(const T *x, const T *dy, T *dx, const Geometry &g) {
    using A = typename Acc<T>::type;
    const Axis &D = g.axis[0], &H = g.axis[1], &W = g.axis[2];
    const i64 lanes = g.lanes, in_plane = g.in_plane(), out_plane = g.out_plane();
    for_planes(g, [&](i64 p, i64 l0, i64 l1) {
        const T *xp = x + p * in_plane;
        const T *dyp = dy + p * out_plane;
        A *acc = sized(Scratch<A>::get().a, in_plane);
        for (i64 c = 0; c < in_plane / lanes; ++c)
            for (i64 l = l0; l < l1; ++l) acc[c * lanes + l] = A(0);
        const i64 *fd = D.first + D.row(p), *fh = H.first + H.row(p), *fw = W.first + W.row(p);
        const i64 *cd = D.count + D.row(p), *ch = H.count + H.row(p), *cw = W.count + W.row(p);
        each_window(g, p, [&](i64 o, i64, i64 od, i64 oh, i64 ow) {
            auto each_tap = [&](auto &&visit) {
                for (i64 td = 0; td < cd[od]; ++td)
                    for (i64 th = 0; th < ch[oh]; ++th)
                        for (i64 tw = 0; tw < cw[ow]; ++tw)
                            visit(((fd[od] + td * D.step) * H.n_in + fh[oh] + th * H.step) * W.n_in +
                                  fw[ow] + tw * W.step);
            };
            for (i64 l = l0; l < l1; ++l) {
                A best = R::template identity<A>();
                each_tap([&](i64 cell) {
                    A v = static_cast<A>(xp[cell * lanes + l]);
                    if (R::take(v, best)) best = v;
                });
                const bool nan = best != best;
                i64 ties = 0;
                auto tied = [&](A v) { return nan ? v != v : v == best; };
                each_tap([&](i64 cell) { ties += tied(static_cast<A>(xp[cell * lanes + l])); });
                if (ties == 0) continue;
                const A share = static_cast<A>(dyp[o * lanes + l]) / static_cast<A>(ties);
                each_tap([&](i64 cell) {
                    if (tied(static_cast<A>(xp[cell * lanes + l]))) acc[cell * lanes + l] += share;
                });
            }
        });
        T *dxp = dx + p * in_plane;
        for (i64 c = 0; c < in_plane / lanes; ++c)
            for (i64 l = l0; l < l1; ++l) dxp[c * lanes + l] = static_cast<T>(acc[c * lanes + l]);
    });
}

// Max-unpooling: y = 0 with x written at the flat per-plane indices (the last write wins).
template <class T>
void unpool(const T *x, const int64_t *index, T *y, i64 planes, i64 n_in, i64 n_out) {
    parallel_for(planes, std::max<i64>(1, 16384 / std::max<i64>(n_out, 1)), [&](i64 begin, i64 end) {
        for (i64 p = begin; p < end; ++p) {
            T *yp = y + p * n_out;
            std::fill(yp, yp + n_out, T(0));
            for (i64 i = 0; i < n_in; ++i) yp[index[p * n_in + i]] = x[p * n_in + i];
        }
    });
}

template <class T>
void unpool_backward(const T *dy, const int64_t *index, T *dx, i64 planes, i64 n_in, i64 n_out) {
    parallel_for(planes, std::max<i64>(1, 16384 / std::max<i64>(n_in, 1)), [&](i64 begin, i64 end) {
        for (i64 p = begin; p < end; ++p)
            for (i64 i = 0; i < n_in; ++i) dx[p * n_in + i] = dy[p * n_out + index[p * n_in + i]];
    });
}

}  // namespace ndpool
