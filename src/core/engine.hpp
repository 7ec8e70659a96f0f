// The one N-d pooling engine: every window of every op is a product of per-dim tap
// tables (first tap, tap count, taps skipped in the padding, step), so a window
// reduction is three one-dimensional passes, W then H then D, each a loop the compiler
// vectorises over the contiguous inner extent. 1-D and 2-D data are 3-D with size-1
// dims whose passes are skipped. Lanes are the channels of channels-last data.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "geometry.hpp"
#include "parallel.hpp"
#include "reducers.hpp"

namespace ndpool {

// A padded row buffer spans the windows' full extent; with a kernel (or padding, or
// dilation) far larger than the input that is mostly identity cells, so such axes take
// the table-driven loops, whose work follows the in-bounds taps only.
inline bool row_buffer_fits(const Axis &ax) {
    const i64 length = (ax.n_out - 1) * std::max<i64>(ax.stride, 1) + (ax.kernel - 1) * ax.step + 1;
    return length <= 4 * ax.n_in + 64;
}

inline bool sliding(const Geometry &g) {
    for (const Axis &ax : g.axis)
        if (!(ax.trivial || (ax.stride > 0 && !ax.per_plane))) return false;
    return row_buffer_fits(g.axis[2]);
}

inline bool whole_planes(const Geometry &g) {
    for (const Axis &ax : g.axis)
        if (ax.per_plane || ax.n_out != 1 || ax.first[0] != 0 || ax.count[0] != ax.n_in || ax.step != 1)
            return false;
    return true;
}

// 2-tap stride-2 windows along W with no padding: the pairs loop below applies.
inline bool pairs_w(const Axis &W) {
    if (W.kernel != 2 || W.stride != 2 || W.step != 1 || W.per_plane) return false;
    for (i64 o = 0; o < W.n_out; ++o)
        if (W.first[o] != 2 * o || W.count[o] != 2) return false;
    return true;
}

// Per-thread scratch, grown as needed and reused across calls.
template <class A>
struct Scratch {
    std::vector<A> a, b, row, extra;
    std::vector<i64> ia, ib;
    std::vector<i64> first[3], count[3], skip[3];
    std::vector<const void *> rows;
    std::vector<int32_t> wa, wb, wc, wd, we;  // winner cells of the running extremes
    static Scratch &get() {
        thread_local Scratch s;
        return s;
    }
};

template <class V>
inline V *sized(std::vector<V> &v, i64 n) {
    if (static_cast<i64>(v.size()) < n) v.resize(static_cast<size_t>(n));
    return v.data();
}

// ------------------------------------------------------------------ forward passes
// Reduce along one axis: in [outer][n_in][inner] -> out [outer][n_out][inner], tracking
// the winning tap as an offset into the full kernel (tap * scale + inner offsets).
template <class R, class In, class A, bool Idx, bool HasIdxIn>
void pass(const In *in, A *out, const i64 *idx_in, i64 *idx_out, i64 outer, i64 n_in,
          i64 n_out, i64 inner, const i64 *first, const i64 *count, const i64 *skip, i64 step,
          i64 scale) {
    for (i64 q = 0; q < outer; ++q) {
        const In *src_q = in + q * n_in * inner;
        const i64 *isrc_q = HasIdxIn ? idx_in + q * n_in * inner : nullptr;
        for (i64 o = 0; o < n_out; ++o) {
            A *d = out + (q * n_out + o) * inner;
            i64 *di = Idx ? idx_out + (q * n_out + o) * inner : nullptr;
            const i64 c = count[o];
            if (c == 0) {
                for (i64 i = 0; i < inner; ++i) d[i] = R::template identity<A>();
                if constexpr (Idx) std::fill(di, di + inner, 0);
                continue;
            }
            const In *s0 = src_q + first[o] * inner;
            const i64 k0 = skip[o] * scale;
            for (i64 i = 0; i < inner; ++i) d[i] = static_cast<A>(s0[i]);
            if constexpr (Idx) {
                const i64 *ii = HasIdxIn ? isrc_q + first[o] * inner : nullptr;
                for (i64 i = 0; i < inner; ++i) di[i] = k0 + (HasIdxIn ? ii[i] : 0);
            }
            for (i64 t = 1; t < c; ++t) {
                const In *s = s0 + t * step * inner;
                if constexpr (R::extreme) {
                    const i64 kt = k0 + t * scale;
                    const i64 *ii = HasIdxIn ? isrc_q + (first[o] + t * step) * inner : nullptr;
                    for (i64 i = 0; i < inner; ++i) {
                        A v = static_cast<A>(s[i]);
                        bool take = R::take(v, d[i]);
                        d[i] = take ? v : d[i];
                        if constexpr (Idx) di[i] = take ? kt + (HasIdxIn ? ii[i] : 0) : di[i];
                    }
                } else {
                    for (i64 i = 0; i < inner; ++i) d[i] += static_cast<A>(s[i]);
                }
            }
        }
    }
}

// Fast path beside `pass` for the contiguous rows of channels-first data: copy the row
// once into a buffer padded with the identity, then every kernel tap is one loop over
// the outputs that the compiler vectorises (stride 1 loads are contiguous).
template <class R, class In, class A, bool Idx>
void pass_row(const In *in, A *out, i64 *idx_out, i64 outer, i64 n_in, i64 n_out,
              i64 start0, i64 stride, i64 step, i64 kernel, const i64 *skip, A *row) {
    const i64 length = (n_out - 1) * stride + (kernel - 1) * step + 1;
    const A identity = R::template identity<A>();
    const i64 lo = std::clamp<i64>(-start0, 0, length);
    const i64 hi = std::clamp<i64>(n_in - start0, lo, length);
    for (i64 b = 0; b < lo; ++b) row[b] = identity;
    for (i64 b = hi; b < length; ++b) row[b] = identity;
    for (i64 q = 0; q < outer; ++q) {
        const In *src = in + q * n_in + start0;
        for (i64 b = lo; b < hi; ++b) row[b] = static_cast<A>(src[b]);
        A *d = out + q * n_out;
        i64 *di = Idx ? idx_out + q * n_out : nullptr;
        for (i64 o = 0; o < n_out; ++o) d[o] = identity;
        if constexpr (Idx)
            for (i64 o = 0; o < n_out; ++o) di[o] = skip[o];
        for (i64 k = 0; k < kernel; ++k) {
            const A *r = row + k * step;
            if constexpr (R::extreme) {
                const i64 kk = k;
                if (stride == 1) {
                    for (i64 o = 0; o < n_out; ++o) {
                        A v = r[o];
                        bool take = R::take(v, d[o]);
                        d[o] = take ? v : d[o];
                        if constexpr (Idx) di[o] = take ? kk : di[o];
                    }
                } else if (stride == 2) {  // a constant stride lets the compiler deinterleave
                    for (i64 o = 0; o < n_out; ++o) {
                        A v = r[2 * o];
                        bool take = R::take(v, d[o]);
                        d[o] = take ? v : d[o];
                        if constexpr (Idx) di[o] = take ? kk : di[o];
                    }
                } else {
                    for (i64 o = 0; o < n_out; ++o) {
                        A v = r[o * stride];
                        bool take = R::take(v, d[o]);
                        d[o] = take ? v : d[o];
                        if constexpr (Idx) di[o] = take ? kk : di[o];
                    }
                }
            } else if (stride == 1) {
                for (i64 o = 0; o < n_out; ++o) d[o] += r[o];
            } else if (stride == 2) {
                for (i64 o = 0; o < n_out; ++o) d[o] += r[2 * o];
            } else {
                for (i64 o = 0; o < n_out; ++o) d[o] += r[o * stride];
            }
        }
    }
}

// One work unit of the forward pass: plane `p`, outputs [o0, o1) along dim `s` (the
// outermost dim with more than one output, so the unit's outputs are contiguous).
template <class R, class T, class A>
void forward_unit(const T *x, const Geometry &g, const Outputs &out, i64 p, int s, i64 o0,
                  i64 o1) {
    auto &sc = Scratch<A>::get();
    constexpr bool Extreme = R::extreme;
    const bool want_idx = Extreme && out.kind != IndexKind::none;
    const i64 lanes = g.lanes;

    // Local tables: dim s restricted to the unit's outputs and its input slab.
    const i64 *first[3], *count[3], *skip[3];
    i64 n_in[3], n_out[3];
    i64 lo = 0;
    for (int a = 0; a < 3; ++a) {
        const Axis &ax = g.axis[a];
        const i64 r = ax.row(p);
        first[a] = ax.first + r, count[a] = ax.count + r, skip[a] = ax.skip + r;
        n_in[a] = ax.n_in, n_out[a] = ax.n_out;
    }
    {
        const Axis &ax = g.axis[s];
        i64 hi = 0;
        lo = ax.n_in;
        for (i64 o = o0; o < o1; ++o) {
            if (count[s][o] == 0) continue;
            lo = std::min(lo, first[s][o]);
            hi = std::max(hi, first[s][o] + (count[s][o] - 1) * ax.step + 1);
        }
        if (hi <= lo) lo = 0, hi = 1;
        for (int b = 0; b < s; ++b)  // the slab is contiguous only below size-1 dims
            if (n_in[b] != 1) lo = 0, hi = ax.n_in;
        i64 *f = sized(sc.first[s], o1 - o0);
        for (i64 o = o0; o < o1; ++o) f[o - o0] = first[s][o] - lo;
        first[s] = f, count[s] += o0, skip[s] += o0;
        n_in[s] = hi - lo, n_out[s] = o1 - o0;
    }
    i64 dim_stride[3] = {g.axis[1].n_in * g.axis[2].n_in * lanes, g.axis[2].n_in * lanes, lanes};
    const T *src = x + p * g.in_plane() + lo * dim_stride[s];

    // Passes W, H, D; sizes[] tracks the current extent of each dim.
    i64 sizes[3] = {n_in[0], n_in[1], n_in[2]};
    const void *cur = src;
    bool cur_is_input = true;
    const i64 *cur_idx = nullptr;
    bool flip = false;
    i64 scale = 1;
    for (int a = 2; a >= 0; --a) {
        const Axis &ax = g.axis[a];
        const i64 kernel_here = ax.kernel;
        if (ax.trivial) continue;
        i64 outer = 1, inner = lanes;
        for (int b = 0; b < a; ++b) outer *= sizes[b];
        for (int b = a + 1; b < 3; ++b) inner *= sizes[b];
        const i64 total = outer * n_out[a] * inner;
        A *dst = sized(flip ? sc.b : sc.a, total);
        i64 *idst = want_idx ? sized(flip ? sc.ib : sc.ia, total) : nullptr;
        const bool row_path = inner == 1 && ax.stride > 0 && !ax.per_plane && row_buffer_fits(ax);
        if (cur_is_input) {
            const T *in = static_cast<const T *>(cur);
            if (row_path) {
                A *row = sized(sc.row, (n_out[a] - 1) * ax.stride + (ax.kernel - 1) * ax.step + 1);
                const i64 start0 = first[a][0] - skip[a][0] * ax.step;
                if (want_idx)
                    pass_row<R, T, A, true>(in, dst, idst, outer, sizes[a], n_out[a], start0,
                                            ax.stride, ax.step, ax.kernel, skip[a], row);
                else
                    pass_row<R, T, A, false>(in, dst, idst, outer, sizes[a], n_out[a], start0,
                                             ax.stride, ax.step, ax.kernel, skip[a], row);
            } else if (want_idx) {
                pass<R, T, A, true, false>(in, dst, nullptr, idst, outer, sizes[a], n_out[a],
                                           inner, first[a], count[a], skip[a], ax.step, scale);
            } else {
                pass<R, T, A, false, false>(in, dst, nullptr, nullptr, outer, sizes[a], n_out[a],
                                            inner, first[a], count[a], skip[a], ax.step, scale);
            }
        } else {
            const A *in = static_cast<const A *>(cur);
            if (want_idx && cur_idx)
                pass<R, A, A, true, true>(in, dst, cur_idx, idst, outer, sizes[a], n_out[a],
                                          inner, first[a], count[a], skip[a], ax.step, scale);
            else if (want_idx)
                pass<R, A, A, true, false>(in, dst, nullptr, idst, outer, sizes[a], n_out[a],
                                           inner, first[a], count[a], skip[a], ax.step, scale);
            else
                pass<R, A, A, false, false>(in, dst, nullptr, nullptr, outer, sizes[a], n_out[a],
                                            inner, first[a], count[a], skip[a], ax.step, scale);
        }
        cur = dst, cur_is_input = false, cur_idx = idst, flip = !flip;
        sizes[a] = n_out[a];
        scale *= kernel_here;
    }

    // Finalize: cast to T, divide a mean, write indices.
    const i64 count_out = n_out[0] * n_out[1] * n_out[2];
    const i64 offset = o0 * (s == 0 ? g.axis[1].n_out * g.axis[2].n_out : s == 1 ? g.axis[2].n_out : 1);
    T *y = static_cast<T *>(out.y) + p * g.out_plane() + offset * lanes;
    const i64 n = count_out * lanes;
    const A *acc = cur_is_input ? nullptr : static_cast<const A *>(cur);
    const T *copy = cur_is_input ? static_cast<const T *>(cur) : nullptr;  // every dim trivial
    i64 o = 0;
    for (i64 od = 0; od < n_out[0]; ++od)
        for (i64 oh = 0; oh < n_out[1]; ++oh)
            for (i64 ow = 0; ow < n_out[2]; ++ow, ++o) {
                const i64 at = o * lanes;
                if (!out.divisor) {
                    for (i64 l = 0; l < lanes; ++l)
                        y[at + l] = copy ? copy[at + l] : static_cast<T>(acc[at + l]);
                    continue;
                }
                const A dv = static_cast<A>(out.divisor.at(od + (s == 0 ? o0 : 0), oh + (s == 1 ? o0 : 0),
                                                           ow + (s == 2 ? o0 : 0)));
                for (i64 l = 0; l < lanes; ++l)
                    y[at + l] = static_cast<T>((copy ? static_cast<A>(copy[at + l]) : acc[at + l]) / dv);
            }
    if (!want_idx) return;
    const i64 base = p * g.out_plane() + offset * lanes;
    auto write_compact = [&](auto *arg) {
        using I = std::remove_pointer_t<decltype(arg)>;
        for (i64 i = 0; i < n; ++i) arg[base + i] = cur_idx ? static_cast<I>(cur_idx[i]) : I(0);
    };
    switch (out.kind) {
        case IndexKind::u8: write_compact(static_cast<uint8_t *>(out.arg)); break;
        case IndexKind::u16: write_compact(static_cast<uint16_t *>(out.arg)); break;
        case IndexKind::flat: {
            int64_t *arg = static_cast<int64_t *>(out.arg) + base;
            const Axis &D = g.axis[0], &H = g.axis[1], &W = g.axis[2];
            const i64 kH = H.kernel, kW = W.kernel;
            i64 o = 0;
            for (i64 od = 0; od < n_out[0]; ++od)
                for (i64 oh = 0; oh < n_out[1]; ++oh)
                    for (i64 ow = 0; ow < n_out[2]; ++ow, ++o) {
                        const i64 gd = od + (s == 0 ? o0 : 0), gh = oh + (s == 1 ? o0 : 0),
                                  gw = ow + (s == 2 ? o0 : 0);
                        const i64 sd = D.start(p, gd), sh = H.start(p, gh), sw = W.start(p, gw);
                        for (i64 l = 0; l < lanes; ++l) {
                            const i64 k = cur_idx ? cur_idx[o * lanes + l] : 0;
                            const i64 kd = k / (kH * kW), kh = (k / kW) % kH, kw = k % kW;
                            arg[o * lanes + l] = ((sd + kd * D.step) * H.n_in + sh + kh * H.step) * W.n_in +
                                                 sw + kw * W.step;
                        }
                    }
            break;
        }
        case IndexKind::none: break;
    }
}

// Forward over all planes: units split dim s into chunks when planes are too few to
// keep every thread busy (one 3-channel image still uses all cores).
template <class R, class T, class A>
void forward(const T *x, const Geometry &g, const Outputs &out) {
    int s = 2;
    for (int a = 0; a < 3; ++a)
        if (g.axis[a].n_out > 1) { s = a; break; }
    const i64 threads = thread_count();
    const i64 n_s = g.axis[s].n_out;
    // a unit reads a slab of dim s, contiguous only when the dims before s have size 1
    bool slab = true;
    for (int a = 0; a < s; ++a) slab = slab && g.axis[a].n_in == 1;
    i64 chunks = 1;
    if (slab && threads > 1 && g.planes < 4 * threads)
        chunks = std::min<i64>(n_s, (4 * threads + g.planes - 1) / std::max<i64>(g.planes, 1));
    const i64 units = g.planes * chunks;
    const i64 work = std::max<i64>(1, g.in_plane() / chunks);
    const i64 grain = std::max<i64>(1, 16384 / work);
    parallel_for(units, grain, [&](i64 begin, i64 end) {
        for (i64 u = begin; u < end; ++u) {
            const i64 p = u / chunks, c = u % chunks;
            forward_unit<R, T, A>(x, g, out, p, s, c * n_s / chunks, (c + 1) * n_s / chunks);
        }
    });
}

// Parallel loop over planes; channels-last planes split into chunks of lanes (multiples
// of 16) only when there are too few planes for the threads: a chunk narrower than the
// plane's lanes makes every cell's loop short and is 2-3x slower per value.
template <class F>
void for_planes(const Geometry &g, F &&body) {
    const i64 threads = thread_count(), lanes = g.lanes;
    i64 width = lanes;
    if (lanes >= 32 && g.planes < 2 * threads)
        width = std::max<i64>(16, (lanes * g.planes / (2 * threads) + 15) / 16 * 16);
    const i64 chunks = (lanes + width - 1) / width;
    const i64 grain = std::max<i64>(1, 16384 / std::max<i64>(1, g.in_plane() / chunks));
    parallel_for(g.planes * chunks, grain, [&](i64 begin, i64 end) {
        for (i64 u = begin; u < end; ++u) {
            const i64 p = u / chunks, c = u % chunks;
            body(p, c * width, std::min(lanes, (c + 1) * width));
        }
    });
}

}  // namespace ndpool
