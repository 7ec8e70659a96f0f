// Backward rules over the same tap tables as the forward engine: scatter to the winner
// (max/min), spread over the window (sums and means, as transposed separable passes),
// share among tied winners (ties="split"); and max-unpooling.
#pragma once

#include "engine.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace ndpool {

// Fill lanes [l0, l1) of `cells` cells; one contiguous loop when the unit owns all lanes.
template <class V>
inline void fill_lanes(V *p, i64 cells, i64 lanes, i64 l0, i64 l1, V value) {
    if (l0 == 0 && l1 == lanes) {
        std::fill(p, p + cells * lanes, value);
        return;
    }
    for (i64 c = 0; c < cells; ++c)
        for (i64 l = l0; l < l1; ++l) p[c * lanes + l] = value;
}

template <class A, class T>
inline void copy_lanes(const A *from, T *to, i64 cells, i64 lanes, i64 l0, i64 l1) {
    if (l0 == 0 && l1 == lanes) {
        for (i64 i = 0; i < cells * lanes; ++i) to[i] = static_cast<T>(from[i]);
        return;
    }
    for (i64 c = 0; c < cells; ++c)
        for (i64 l = l0; l < l1; ++l) to[c * lanes + l] = static_cast<T>(from[c * lanes + l]);
}

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

// Per-dim owner of every input position for disjoint windows: window o and kernel tap,
// or o = -1 where no window reaches.
struct Owners {
    std::vector<i64> window[3], tap[3];
    explicit Owners(const Geometry &g) {
        for (int a = 0; a < 3; ++a) {
            const Axis &ax = g.axis[a];
            window[a].assign(static_cast<size_t>(ax.n_in), -1);
            tap[a].assign(static_cast<size_t>(ax.n_in), 0);
            for (i64 o = 0; o < ax.n_out; ++o)
                for (i64 t = 0; t < ax.count[o]; ++t) {
                    const i64 x = ax.first[o] + t * ax.step;
                    window[a][x] = o, tap[a][x] = ax.skip[o] + t;
                }
        }
    }
};

// One input row under 2-tap stride-2 windows: row[2j + t] = (a[j] == k0 + t) ? dy[j] : 0.
// GCC does not vectorise the interleaved stores, so where AVX-512 is available float32
// rows take an explicit kernel (16 windows per step: two masked moves and two
// interleaving permutes), twice as fast as the portable loop, which serves the rest.
template <class T, class I>
inline void pairs_row(const T *gy, const I *a, T *row, i64 n, I k0) {
    i64 j = 0;
#if defined(__AVX512F__)
    if constexpr (std::is_same<T, float>::value && sizeof(I) <= 2) {
        const __m512i even = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        const __m512i odd = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
        const __m512i key0 = _mm512_set1_epi32(k0), key1 = _mm512_set1_epi32(k0 + 1);
        for (; j < n; j += 16) {
            const __mmask16 live = j + 16 <= n ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1);
            const __m512 v = _mm512_maskz_loadu_ps(live, gy + j);
            __m512i k;
            if constexpr (sizeof(I) == 1) k = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(live, a + j));
            else k = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(live, a + j));
            const __m512 first = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(k, key0), v);
            const __m512 second = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(k, key1), v);
            const __m512 lo = _mm512_permutex2var_ps(first, even, second);
            const __m512 hi = _mm512_permutex2var_ps(first, odd, second);
            if (j + 16 <= n) {
                _mm512_storeu_ps(row + 2 * j, lo);
                _mm512_storeu_ps(row + 2 * j + 16, hi);
            } else {  // the last windows: 2 * (n - j) cells over the two halves
                const i64 cells = 2 * (n - j);
                _mm512_mask_storeu_ps(row + 2 * j, __mmask16((1u << std::min<i64>(cells, 16)) - 1), lo);
                if (cells > 16) _mm512_mask_storeu_ps(row + 2 * j + 16, __mmask16((1u << (cells - 16)) - 1), hi);
            }
        }
        return;
    }
#endif
    const I k1 = static_cast<I>(k0 + 1);
    for (; j < n; ++j) {
        const T v = gy[j];  // loaded unconditionally so the loop can vectorise
        const I aj = a[j];
        row[2 * j] = aj == k0 ? v : T(0);
        row[2 * j + 1] = aj == k1 ? v : T(0);
    }
}

// Disjoint windows: every input row is written once, each cell getting dy where it is its
// window's winner and 0 elsewhere; no zero-fill pass, no accumulation. A work unit is one
// output row and the input rows its windows cover.
template <class T, class I>
void scatter_disjoint(const T *dy, const I *arg, T *dx, const Geometry &g) {
    const Owners own(g);
    const Axis &D = g.axis[0], &H = g.axis[1], &W = g.axis[2];
    const i64 lanes = g.lanes, width = W.n_in * lanes, out_rows = D.n_out * H.n_out;
    const i64 in_plane = g.in_plane(), out_plane = g.out_plane();
    const bool pairs = lanes == 1 && pairs_w(W);
    const i64 *ow_of = own.window[2].data(), *kw_of = own.tap[2].data();
    std::vector<i64> uncovered;  // input rows no window reaches
    for (i64 d = 0; d < D.n_in; ++d)
        for (i64 h = 0; h < H.n_in; ++h)
            if (own.window[0][d] < 0 || own.window[1][h] < 0) uncovered.push_back(d * H.n_in + h);
    const i64 grain = std::max<i64>(1, 16384 / std::max<i64>(width * D.kernel * H.kernel, 1));
    parallel_for(g.planes * out_rows, grain, [&](i64 begin, i64 end) {
        i64 p = begin / out_rows, r = begin % out_rows, od = r / H.n_out, oh = r % H.n_out;
        for (i64 u = begin; u < end; ++u) {
            if (u > begin && ++oh == H.n_out) {  // next output row, carried without divisions
                oh = 0;
                if (++od == D.n_out) od = 0, ++p;
            }
            r = od * H.n_out + oh;
            T *plane = dx + p * in_plane;
            if (r == 0)
                for (i64 row : uncovered) std::fill(plane + row * width, plane + (row + 1) * width, T(0));
            const i64 at = p * out_plane + r * W.n_out * lanes;
            const I *a = arg + at;
            const T *gy = dy + at;
            for (i64 td = 0; td < D.count[od]; ++td)
                for (i64 th = 0; th < H.count[oh]; ++th) {
                    const i64 d = D.first[od] + td * D.step, h = H.first[oh] + th * H.step;
                    const i64 kb = ((D.skip[od] + td) * H.kernel + H.skip[oh] + th) * W.kernel;
                    T *row = plane + (d * H.n_in + h) * width;
                    if (pairs) {
                        pairs_row<T, I>(gy, a, row, W.n_out, static_cast<I>(kb));
                        std::fill(row + 2 * W.n_out, row + width, T(0));
                        continue;
                    }
                    for (i64 w = 0; w < W.n_in; ++w) {
                        const i64 o = ow_of[w];
                        if (o < 0) {
                            std::fill(row + w * lanes, row + (w + 1) * lanes, T(0));
                            continue;
                        }
                        const I k = static_cast<I>(kb + kw_of[w]);
                        const I *ao = a + o * lanes;
                        const T *go = gy + o * lanes;
                        T *cell = row + w * lanes;
                        for (i64 l = 0; l < lanes; ++l) {
                            const T v = go[l];
                            cell[l] = ao[l] == k ? v : T(0);
                        }
                    }
                }
        }
    });
}

#if defined(__AVX512F__)
// Channels-last max/min backward of one output cell, 16 lanes at a time: each lane's
// winner offset picks its input cell (a gather from the tap table), and dy is added
// there with a gather and a scatter. Lanes are distinct, so no two updates in one
// vector meet. Returns the first lane left to the caller.
template <class I>
inline i64 scatter_lanes(const float *gy, const I *a, float *acc, const int32_t *rel, i64 at, i64 l0, i64 l1) {
    const __m512i step = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    i64 l = l0;
    for (; l + 16 <= l1; l += 16) {
        __m512i k;
        if constexpr (sizeof(I) == 1) k = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(a + l)));
        else k = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(a + l)));
        const __m512i where = _mm512_add_epi32(_mm512_add_epi32(_mm512_i32gather_epi32(k, rel, 4), step),
                                               _mm512_set1_epi32(static_cast<int32_t>(at + l)));
        const __m512 sum = _mm512_add_ps(_mm512_i32gather_ps(where, acc, 4), _mm512_loadu_ps(gy + l));
        _mm512_i32scatter_ps(acc, where, sum, 4);
    }
    return l;
}
#endif

// Max/min backward, ties to the first winner: dx[winner] += dy. `arg` holds compact
// kernel offsets (I = uint8/uint16/int32) or flat per-plane indices (I = int64, Flat).
template <class T, class I, bool Flat>
void scatter(const T *dy, const I *arg, T *dx, const Geometry &g) {
    using A = typename Acc<T>::type;
    bool disjoint = !Flat;
    for (int a = 0; a < 3; ++a) disjoint = disjoint && g.axis[a].disjoint();
    if (disjoint) return scatter_disjoint<T, I>(dy, arg, dx, g);
    const std::vector<i64> rel = Flat ? std::vector<i64>() : tap_offsets(g);
    std::vector<int32_t> rel_lanes;  // tap offsets in elements, for the AVX-512 lanes kernel
    if (!Flat && g.lanes >= 16 && g.in_plane() < (i64(1) << 31))
        for (i64 r : rel) rel_lanes.push_back(static_cast<int32_t>(r * g.lanes));
    const Axis &D = g.axis[0], &H = g.axis[1], &W = g.axis[2];
    const i64 lanes = g.lanes, in_plane = g.in_plane(), out_plane = g.out_plane();
    for_planes(g, [&](i64 p, i64 l0, i64 l1) {
        T *dxp = dx + p * in_plane;
        const T *dyp = dy + p * out_plane;
        const I *ap = arg + p * out_plane;
        auto &sc = Scratch<A>::get();
        A *acc = std::is_same<A, T>::value ? reinterpret_cast<A *>(dxp) : sized(sc.a, in_plane);
        fill_lanes(acc, in_plane / lanes, lanes, l0, l1, A(0));
        if constexpr (Flat) {
            for (i64 o = 0; o < out_plane / lanes; ++o)
                for (i64 l = l0; l < l1; ++l)
                    acc[ap[o * lanes + l] * lanes + l] += static_cast<A>(dyp[o * lanes + l]);
        } else {
            i64 *start_w = sized(sc.first[2], W.n_out);
            for (i64 ow = 0; ow < W.n_out; ++ow) start_w[ow] = W.start(p, ow);
            const i64 *relp = rel.data();
            const int32_t *rel32 = rel_lanes.empty() ? nullptr : rel_lanes.data();
            for (i64 od = 0; od < D.n_out; ++od)
                for (i64 oh = 0; oh < H.n_out; ++oh) {
                    const i64 base = (D.start(p, od) * H.n_in + H.start(p, oh)) * W.n_in;
                    const i64 o0 = (od * H.n_out + oh) * W.n_out;
                    const I *a = ap + o0 * lanes;
                    const T *gy = dyp + o0 * lanes;
                    if (lanes == 1) {
                        for (i64 ow = 0; ow < W.n_out; ++ow)
                            acc[base + start_w[ow] + relp[a[ow]]] += static_cast<A>(gy[ow]);
                    } else {
                        for (i64 ow = 0; ow < W.n_out; ++ow) {
                            const i64 cell = base + start_w[ow];
                            i64 l = l0;
#if defined(__AVX512F__)
                            if constexpr (std::is_same<T, float>::value && sizeof(I) <= 2)
                                if (rel32) l = scatter_lanes(gy + ow * lanes, a + ow * lanes, acc, rel32,
                                                             cell * lanes, l0, l1);
#endif
                            for (; l < l1; ++l)
                                acc[(cell + relp[a[ow * lanes + l]]) * lanes + l] +=
                                    static_cast<A>(gy[ow * lanes + l]);
                        }
                    }
                }
        }
        if constexpr (!std::is_same<A, T>::value) copy_lanes(acc, dxp, in_plane / lanes, lanes, l0, l1);
    });
}

// For each input position, the windows whose taps reach it (CSR lists per dim).
struct Covers {
    std::vector<i64> begin[3], window[3];
    explicit Covers(const Geometry &g) {
        for (int a = 0; a < 3; ++a) {
            const Axis &ax = g.axis[a];
            std::vector<std::vector<i64>> lists(static_cast<size_t>(ax.n_in));
            for (i64 o = 0; o < ax.n_out; ++o)
                for (i64 t = 0; t < ax.count[o]; ++t) lists[ax.first[o] + t * ax.step].push_back(o);
            begin[a].push_back(0);
            for (auto &list : lists) {
                window[a].insert(window[a].end(), list.begin(), list.end());
                begin[a].push_back(static_cast<i64>(window[a].size()));
            }
        }
    }
};

// Mean backward: dy / divisor spread over every window's in-bounds taps. Each output row's
// spread along W is made once; each input row is then the sum of the spread rows of the
// windows covering it, and is written once.
template <class T>
void spread(const T *dy, const Divisor &divisor, T *dx, const Geometry &g) {
    using A = typename Acc<T>::type;
    const Axis &D = g.axis[0], &H = g.axis[1], &W = g.axis[2];
    const i64 lanes = g.lanes, in_plane = g.in_plane(), out_plane = g.out_plane();
    const i64 width = W.n_in * lanes, out_rows = D.n_out * H.n_out, in_rows = D.n_in * H.n_in;
    if (whole_planes(g)) {  // global pools: every cell gets dy / divisor
        const A dv = static_cast<A>(divisor.at(0, 0, 0));
        parallel_for(g.planes, std::max<i64>(1, 16384 / std::max<i64>(in_plane, 1)), [&](i64 begin, i64 end) {
            std::vector<T> share(static_cast<size_t>(lanes));
            for (i64 p = begin; p < end; ++p) {
                for (i64 l = 0; l < lanes; ++l) share[l] = static_cast<T>(static_cast<A>(dy[p * lanes + l]) / dv);
                T *dxp = dx + p * in_plane;
                if (lanes == 1) std::fill(dxp, dxp + in_plane, share[0]);
                else for (i64 c = 0; c < in_plane / lanes; ++c) std::copy(share.begin(), share.end(), dxp + c * lanes);
            }
        });
        return;
    }
    const Covers cover(g);
    const bool row_path = lanes == 1 && W.stride > 0 && !W.per_plane && row_buffer_fits(W);
    const i64 stride = std::max<i64>(W.stride, 1);
    const i64 length = (W.n_out - 1) * stride + (W.kernel - 1) * W.step + 1;
    const i64 start0 = W.first[0] - W.skip[0] * W.step;
    const i64 lo = std::clamp<i64>(-start0, 0, length), hi = std::clamp<i64>(W.n_in - start0, lo, length);
    parallel_for(g.planes, std::max<i64>(1, 16384 / std::max<i64>(in_plane, 1)), [&](i64 begin, i64 end) {
        auto &sc = Scratch<A>::get();
        std::vector<A> pad_row(row_path ? static_cast<size_t>(length) : 0);
        A *spread_rows = sized(sc.a, out_rows * width);
        A *sum = sized(sc.b, width);
        A *share = sized(sc.row, W.n_out * lanes);
        for (i64 p = begin; p < end; ++p) {
            const T *dyp = dy + p * out_plane;
            for (i64 r = 0; r < out_rows; ++r) {
                A *t = spread_rows + r * width;
                if (row_path) {  // sliding windows along W: every tap is a strided add
                    A *q = pad_row.data();
                    const double row_div = divisor.row(r / H.n_out, r % H.n_out);
                    const double *div = divisor.factor[2];
                    const T *gy = dyp + r * W.n_out;
                    for (i64 ow = 0; ow < W.n_out; ++ow)
                        share[ow] = static_cast<A>(gy[ow]) / static_cast<A>(row_div * div[ow]);
                    std::fill(q, q + length, A(0));
                    for (i64 k = 0; k < W.kernel; ++k) {
                        A *qk = q + k * W.step;
                        if (stride == 1) for (i64 ow = 0; ow < W.n_out; ++ow) qk[ow] += share[ow];
                        else if (stride == 2) for (i64 ow = 0; ow < W.n_out; ++ow) qk[2 * ow] += share[ow];
                        else for (i64 ow = 0; ow < W.n_out; ++ow) qk[ow * stride] += share[ow];
                    }
                    std::fill(t, t + width, A(0));
                    std::copy(q + lo, q + hi, t + start0 + lo);
                    continue;
                }
                std::fill(t, t + width, A(0));
                for (i64 ow = 0; ow < W.n_out; ++ow) {
                    const i64 o = r * W.n_out + ow;
                    const A dv = static_cast<A>(divisor.at(r / H.n_out, r % H.n_out, ow));
                    for (i64 l = 0; l < lanes; ++l) share[ow * lanes + l] = static_cast<A>(dyp[o * lanes + l]) / dv;
                }
                for (i64 ow = 0; ow < W.n_out; ++ow)
                    for (i64 k = 0; k < W.count[ow]; ++k) {
                        A *cell = t + (W.first[ow] + k * W.step) * lanes;
                        for (i64 l = 0; l < lanes; ++l) cell[l] += share[ow * lanes + l];
                    }
            }
            for (i64 r = 0; r < in_rows; ++r) {
                const i64 d = r / H.n_in, h = r % H.n_in;
                T *row = dx + p * in_plane + r * width;
                const i64 nd = cover.begin[0][d + 1] - cover.begin[0][d];
                const i64 nh = cover.begin[1][h + 1] - cover.begin[1][h];
                if (nd * nh == 1) {  // disjoint windows: a converted copy
                    const A *t = spread_rows + (cover.window[0][cover.begin[0][d]] * H.n_out +
                                                cover.window[1][cover.begin[1][h]]) * width;
                    for (i64 c = 0; c < width; ++c) row[c] = static_cast<T>(t[c]);
                    continue;
                }
                std::fill(sum, sum + width, A(0));
                for (i64 i = cover.begin[0][d]; i < cover.begin[0][d + 1]; ++i)
                    for (i64 j = cover.begin[1][h]; j < cover.begin[1][h + 1]; ++j) {
                        const A *t = spread_rows + (cover.window[0][i] * H.n_out + cover.window[1][j]) * width;
                        for (i64 c = 0; c < width; ++c) sum[c] += t[c];
                    }
                for (i64 c = 0; c < width; ++c) row[c] = static_cast<T>(sum[c]);
            }
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
        fill_lanes(acc, in_plane / lanes, lanes, l0, l1, A(0));
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
        copy_lanes(acc, dx + p * in_plane, in_plane / lanes, lanes, l0, l1);
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
