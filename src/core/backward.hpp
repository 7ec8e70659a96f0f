// Backward rules over the same tap tables as the forward engine: scatter to the winner
// (max/min), spread over the window (sums and means, as transposed separable passes),
// share among tied winners (ties="split"); and max-unpooling.
#pragma once

#include "engine.hpp"

#include "simd/kernels.hpp"

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

// The input rows (D and H flattened) that no window reaches.
inline std::vector<i64> uncovered_rows(const Owners &own, const Geometry &g) {
    std::vector<i64> rows;
    for (i64 d = 0; d < g.axis[0].n_in; ++d)
        for (i64 h = 0; h < g.axis[1].n_in; ++h)
            if (own.window[0][d] < 0 || own.window[1][h] < 0) rows.push_back(d * g.axis[1].n_in + h);
    return rows;
}

// body(p, od, oh) for the work units [begin, end) of planes x output rows (D and H), the
// next row carried from the last without divisions.
template <class F>
inline void each_output_row(i64 n_od, i64 n_oh, i64 begin, i64 end, F &&body) {
    const i64 out_rows = n_od * n_oh;
    i64 p = begin / out_rows, od = begin % out_rows / n_oh, oh = begin % out_rows % n_oh;
    for (i64 u = begin; u < end; ++u) {
        if (u > begin && ++oh == n_oh) {
            oh = 0;
            if (++od == n_od) od = 0, ++p;
        }
        body(p, od, oh);
    }
}

// One input row under 2-tap stride-2 windows: row[2j + t] = (a[j] == k0 + t) ? dy[j] : 0;
// the level's vector way (simd/kernels.hpp) first, this loop for the rest.
template <class T, class I>
inline void pairs_row(const T *gy, const I *a, T *row, i64 n, I k0) {
    const I k1 = static_cast<I>(k0 + 1);
    for (i64 j = simd::pairs_row(gy, a, row, n, k0); j < n; ++j) {
        const T v = gy[j];  // loaded unconditionally so the loop can vectorise
        const I aj = a[j];
        row[2 * j] = aj == k0 ? v : T(0);
        row[2 * j + 1] = aj == k1 ? v : T(0);
    }
}

// Whether dx (`bytes` in all, rows of `row_bytes`) is written around the caches: at 2
// threads or more, rows of whole lines (as the forward rows path), and 64 MiB or more, as
// gradients are read again soon. On Zen 3 (32 MiB of L3), 2 threads: vgg_max's 205 MB
// 9.8 -> 8.4 ms; max3d's 16.8 MB 0.81 -> 1.16 ms and small_max's 8.4 MB 0.40 -> 0.59 ms
// were slower so.
inline bool streams_rows(const void *dx, i64 bytes, i64 row_bytes) {
    return thread_count() > 1 && bytes >= (i64(64) << 20) && row_bytes % 64 == 0 &&
           reinterpret_cast<uintptr_t>(dx) % 64 == 0;
}

// The input rows under each output row (D and H flattened) of disjoint windows: output
// row r covers the rows at offsets row[start[r] ..< start[r + 1]] (in values, rows `width`
// apart), whose windows' taps along W start at code key[i]. Listed once per call.
struct RowsUnder {
    std::vector<i64> start{0}, row, key;
    RowsUnder(const Geometry &g, i64 width) {
        const Axis &D = g.axis[0], &H = g.axis[1], &W = g.axis[2];
        for (i64 od = 0; od < D.n_out; ++od)
            for (i64 oh = 0; oh < H.n_out; ++oh) {
                for (i64 td = 0; td < D.count[od]; ++td)
                    for (i64 th = 0; th < H.count[oh]; ++th) {
                        const i64 d = D.first[od] + td * D.step, h = H.first[oh] + th * H.step;
                        row.push_back((d * H.n_in + h) * width);
                        key.push_back(((D.skip[od] + td) * H.kernel + H.skip[oh] + th) * W.kernel);
                    }
                start.push_back(static_cast<i64>(row.size()));
            }
    }
};

// scatter_disjoint's rows under 2-tap stride-2 windows (k2 s2) when the planes are many:
// a work unit is whole planes, so that short rows (16 windows in 64x32x32x32) spend
// their time in pairs_row rather than in finding their rows.
template <class T, class I>
void scatter_pairs(const T *dy, const I *arg, T *dx, const Geometry &g, const std::vector<i64> &uncovered,
                   const RowsUnder &under) {
    const i64 width = g.axis[2].n_in, in_plane = g.in_plane(), out_plane = g.out_plane();
    const i64 out_rows = g.axis[0].n_out * g.axis[1].n_out, n = g.axis[2].n_out;
    const i64 *start = under.start.data(), *row = under.row.data(), *key = under.key.data();
    const bool stream = streams_rows(dx, g.planes * in_plane * static_cast<i64>(sizeof(T)), width * static_cast<i64>(sizeof(T)));
    auto planes = [&](auto streamed, i64 begin, i64 end) {  // a copy of the loop each way
        constexpr bool S = decltype(streamed)::value;
        T *buf = S ? sized(Scratch<T>::get().row, width) : nullptr;  // a row, then streamed to dx
        for (i64 p = begin; p < end; ++p) {
            T *plane = dx + p * in_plane;
            for (i64 r : uncovered) std::fill(plane + r * width, plane + (r + 1) * width, T(0));
            const T *gy = dy + p * out_plane;
            const I *a = arg + p * out_plane;
            for (i64 r = 0; r < out_rows; ++r, gy += n, a += n)
                for (i64 i = start[r]; i < start[r + 1]; ++i) {
                    T *dst = S ? buf : plane + row[i];
                    pairs_row<T, I>(gy, a, dst, n, static_cast<I>(key[i]));
                    if (2 * n < width) std::fill(dst + 2 * n, dst + width, T(0));
                    if (S) simd::stream_copy(buf, plane + row[i], width);
                }
        }
        if (S) simd::stream_fence();
    };
    parallel_for(g.planes, std::max<i64>(1, 16384 / std::max<i64>(in_plane, 1)), [&](i64 begin, i64 end) {
        if (stream) planes(std::true_type{}, begin, end);
        else planes(std::false_type{}, begin, end);
    });
}

// Disjoint windows: every input row is written once, each cell getting dy where it is its
// window's winner and 0 elsewhere; no zero-fill pass, no accumulation. A work unit is one
// output row and the input rows its windows cover.
template <class T, class I>
void scatter_disjoint(const T *dy, const I *arg, T *dx, const Geometry &g) {
    const Owners own(g);
    // copies, not references: the stores to dx cannot change them, so with rows as short
    // as 16 windows the loop does not reload every field for every row
    const Axis D = g.axis[0], H = g.axis[1], W = g.axis[2];
    const i64 lanes = g.lanes, width = W.n_in * lanes, out_rows = D.n_out * H.n_out;
    const i64 in_plane = g.in_plane(), out_plane = g.out_plane();
    const bool pairs = lanes == 1 && pairs_w(W);
    const i64 *ow_of = own.window[2].data(), *kw_of = own.tap[2].data();
    const std::vector<i64> uncovered = uncovered_rows(own, g);
    const RowsUnder under(g, width);
    if (pairs && g.planes >= 4 * thread_count()) return scatter_pairs<T, I>(dy, arg, dx, g, uncovered, under);
    const i64 *start = under.start.data(), *row_at = under.row.data(), *key = under.key.data();
    const i64 grain = std::max<i64>(1, 16384 / std::max<i64>(width * D.kernel * H.kernel, 1));
    parallel_for(g.planes * out_rows, grain, [&](i64 begin, i64 end) {
        each_output_row(D.n_out, H.n_out, begin, end, [&](i64 p, i64 od, i64 oh) {
            const i64 r = od * H.n_out + oh;
            T *plane = dx + p * in_plane;
            if (r == 0)
                for (i64 row : uncovered) std::fill(plane + row * width, plane + (row + 1) * width, T(0));
            const i64 at = p * out_plane + r * W.n_out * lanes;
            const I *a = arg + at;
            const T *gy = dy + at;
            for (i64 i = start[r]; i < start[r + 1]; ++i) {
                const i64 kb = key[i];
                T *row = plane + row_at[i];
                if (pairs) {
                    pairs_row<T, I>(gy, a, row, W.n_out, static_cast<I>(kb));
                    if (2 * W.n_out < width) std::fill(row + 2 * W.n_out, row + width, T(0));
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
        });
    });
}

// scatter() for planes whose offsets pass 32 bits: the same sums in 64-bit offsets.
template <class T, class I, bool Flat>
void scatter_wide(const T *dy, const I *arg, T *dx, const Geometry &g) {
    using A = typename Acc<T>::type;
    const std::vector<i64> rel = Flat ? std::vector<i64>() : tap_offsets(g);
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
                            for (i64 l = l0; l < l1; ++l)
                                acc[(cell + relp[a[ow * lanes + l]]) * lanes + l] +=
                                    static_cast<A>(gy[ow * lanes + l]);
                        }
                    }
                }
        }
        if constexpr (!std::is_same<A, T>::value) copy_lanes(acc, dxp, in_plane / lanes, lanes, l0, l1);
    });
}

// A compact code's offset from its window's start, as arithmetic that GCC vectorises:
// code = (kd * KH + kh) * KW + kw, split by multiplying with rounded-up reciprocals
// (exact for every code of the kernel, checked when made), then weighted by each tap
// step's distance in cells. The table lookup rel[code] in the adds' address made each
// add's target wait on two loads in a row, and at 1 thread that cost sppf's 5x5
// backward about a quarter (flat int64 targets, one load, ran 4.7 ms against 6.4).
struct CodeSplit {
    uint32_t by_hw = 0, by_w = 0;  // 2^20 / (KH * KW) and 2^20 / KW, rounded up
    uint32_t hw = 1, w = 1;
    int32_t step_d = 0, step_h = 0, step_w = 0;  // cells between taps along D, H, W
    std::vector<int32_t> rel;                    // the same offsets as a table, by code
    // SSE2 (baseline): 2-D kernels of at most 256 taps split their 8-bit codes in 16-bit
    // lanes, which SSE2 multiplies natively (pmulhuw, pmullw, pmaddwd): by16 = 2^16 / KW
    // rounded up, 0 where unset (KW = 1, a 3-D kernel, a step past 16 bits).
    uint16_t by16 = 0;
    int16_t w16 = 1, step_h16 = 0, step_w16 = 0;

    // Unset (ok() false) where the kernel is too big for the 32-bit products.
    static CodeSplit of(const Geometry &g) {
        const Axis &D = g.axis[0], &H = g.axis[1], &W = g.axis[2];
        CodeSplit c;
        if (g.volume() > 4096) return c;
        c.hw = static_cast<uint32_t>(H.kernel * W.kernel), c.w = static_cast<uint32_t>(W.kernel);
        c.by_hw = ((1u << 20) + c.hw - 1) / c.hw, c.by_w = ((1u << 20) + c.w - 1) / c.w;
        c.step_d = static_cast<int32_t>(D.step * H.n_in * W.n_in), c.step_h = static_cast<int32_t>(H.step * W.n_in);
        c.step_w = static_cast<int32_t>(W.step);
        const std::vector<i64> taps = tap_offsets(g);
        c.rel.assign(taps.begin(), taps.end());
        for (i64 k = 0; k < g.volume(); ++k)
            if (c.arith(static_cast<uint32_t>(k)) != taps[static_cast<size_t>(k)]) return CodeSplit();
        if (D.kernel == 1 && g.volume() <= 256 && W.kernel > 1 && c.step_h < 32768 && c.step_w < 32768) {
            c.by16 = static_cast<uint16_t>((65536 + W.kernel - 1) / W.kernel);
            c.w16 = static_cast<int16_t>(W.kernel);
            c.step_h16 = static_cast<int16_t>(c.step_h), c.step_w16 = static_cast<int16_t>(c.step_w);
            for (i64 k = 0; k < g.volume() && c.by16; ++k)
                if (c.narrow(static_cast<uint8_t>(k)) != taps[static_cast<size_t>(k)]) c.by16 = 0;
        }
        return c;
    }
    bool ok() const { return by_hw != 0; }
    int32_t operator()(uint32_t code) const {
        if constexpr (!simd::kMul32) return rel[code];  // scalar lookups beat SSE2's emulated products
        return arith(code);
    }
    int32_t narrow(uint8_t code) const {
        const uint16_t c = code, kh = static_cast<uint16_t>((static_cast<uint32_t>(c) * by16) >> 16);
        const int16_t kw = static_cast<int16_t>(c - kh * static_cast<uint16_t>(w16));
        return static_cast<int32_t>(static_cast<int16_t>(kh)) * step_h16 + static_cast<int32_t>(kw) * step_w16;
    }
    // Whether narrow() is the way at this level for codes of type I.
    template <class I>
    bool narrow_for() const { return !simd::kMul32 && sizeof(I) == 1 && by16 != 0; }
    int32_t arith(uint32_t code) const {
        const uint32_t kd = (code * by_hw) >> 20, rest = code - kd * hw, kh = (rest * by_w) >> 20, kw = rest - kh * w;
        return static_cast<int32_t>(kd) * step_d + static_cast<int32_t>(kh) * step_h + static_cast<int32_t>(kw) * step_w;
    }
};

// Every output cell's window origin in plane p (in cells), for the compact offsets.
inline std::vector<int32_t> window_origins(const Geometry &g, i64 p) {
    std::vector<int32_t> origin(static_cast<size_t>(g.out_plane() / g.lanes));
    each_window(g, p, [&](i64 o, i64 cell, i64, i64, i64) { origin[o] = static_cast<int32_t>(cell); });
    return origin;
}

// acc[target(o)] += dy[o] for the outputs of plane rows [r0, r1) (D and H flattened),
// lanes == 1, in order. (Measured on Zen 3 with sppf's codes: an order that keeps two
// adds to one cell apart, by phases of disjoint windows or by interleaved quarters, and
// summing runs of one target in a register first, were all as slow or slower within one
// plane; other planes' adds in between do help: scatter_grouped.)
template <class A, class T, class Target>
inline void scatter_rows(A *acc, const T *gy, i64 n_w, i64 r0, i64 r1, Target &&target) {
    for (i64 o = r0 * n_w; o < r1 * n_w; ++o) acc[target(o)] += static_cast<A>(gy[o]);
}

// The same adds, only to the targets at or past `cut` (Past) or short of it (!Past);
// the others go to a cell of the caller's without a branch (which targets fall on which
// side changes from window to window).
template <bool Past, class A, class T, class Target>
inline void scatter_rows_cut(A *acc, const T *gy, i64 n_w, i64 r0, i64 r1, i64 cut, Target &&target) {
    A sink[8] = {};  // eight, so that the adds dropped here do not wait on each other
    for (i64 o = r0 * n_w; o < r1 * n_w; ++o) {
        const i64 t = target(o);
        A *to = (t >= cut) == Past ? acc + t : sink + (o & 7);
        *to += static_cast<A>(gy[o]);
    }
}

// Max/min backward of planes too few for the threads (lanes == 1): each plane's outputs
// split into bands along its outermost sliding axis, each band's windows together at
// least a window's extent long, so that a band's targets reach no band but the two beside
// it; four bands a thread. Every cell must get its adds in output order (PyTorch's sums,
// to the bit, whatever the bands), so a cell that bands b - 1 and b both reach takes
// b - 1's adds first: after a parallel zero fill, every band adds in parallel to the
// cells past the reach of the band before it (cut[b]), then every band adds to the cells
// short of its cut, which band b - 1 has finished. (Even bands, then odd ones, gave
// b's adds before b - 1's where b was even: 2e-6 off PyTorch in a 300 x 301 k5 plane.)
template <class T, class I, bool Flat>
void scatter_bands(const T *dy, const I *arg, T *dx, const Geometry &g, const int32_t *origin, const int32_t *rel,
                   const CodeSplit &split) {
    using A = typename Acc<T>::type;
    const Axis &D = g.axis[0], &H = g.axis[1];
    const bool along_d = !D.trivial;
    const Axis &S = along_d ? D : H;
    const i64 unit = along_d ? H.n_out : 1;  // output rows (D and H flattened) per step of S
    const i64 cells_per_s = along_d ? H.n_in * g.axis[2].n_in : g.axis[2].n_in;  // input cells per step of S
    const i64 in_plane = g.in_plane(), out_plane = g.out_plane(), rows = D.n_out * H.n_out;
    const i64 extent = (S.kernel - 1) * S.step + 1, least = (extent + S.stride - 1) / S.stride;
    // the head rows of each band (windows that start short of the cut) go over twice
    const i64 per_thread = (S.n_out + 4 * thread_count() - 1) / (4 * thread_count());
    const i64 band = std::max<i64>({least, along_d ? 4 : 32, per_thread}), bands = (S.n_out + band - 1) / band;
    std::vector<i64> cut(static_cast<size_t>(bands), 0), head(static_cast<size_t>(bands), 0);
    for (i64 b = 1; b < bands; ++b) {
        const i64 o = b * band - 1;  // band b - 1's last window reaches furthest
        const i64 reach = S.first[o] + (S.count[o] - 1) * S.step + 1;
        cut[b] = reach * cells_per_s;
        i64 n = 0;  // band b's windows that start short of the cut
        while (b * band + n < std::min(S.n_out, (b + 1) * band) && S.first[b * band + n] < reach) ++n;
        head[b] = n;
    }
    std::vector<A> wide;  // float16 sums in float, for the whole of every plane
    A *acc = std::is_same<A, T>::value ? reinterpret_cast<A *>(dx) : (wide.resize(g.planes * in_plane), wide.data());
    const i64 grain = 1 << 14;
    parallel_for(g.planes * in_plane, grain, [&](i64 begin, i64 end) { std::fill(acc + begin, acc + end, A(0)); });
    for (int phase = 0; phase < 2; ++phase) {
        parallel_for(g.planes * bands, 1, [&](i64 begin, i64 end) {
            for (i64 u = begin; u < end; ++u) {
                const i64 p = u / bands, b = u % bands;
                const i64 r0 = b * band * unit, r1 = std::min(rows, (b + 1) * band * unit), rh = r0 + head[b] * unit;
                A *accp = acc + p * in_plane;
                const T *dyp = dy + p * out_plane;
                const I *ap = arg + p * out_plane;
                const i64 n_w = g.axis[2].n_out;
                auto target = [&](i64 o) {
                    if constexpr (Flat) return static_cast<i64>(ap[o]);
                    else return static_cast<i64>(origin[o] + rel[ap[o]]);
                };
                // rows [ra, rb) to `adds`, a row at a time with its targets made first where the
                // codes split (as in grouped_adds)
                auto by_rows = [&](i64 ra, i64 rb, auto &&adds) {
                    if constexpr (!Flat) {
                        if (split.ok()) {
                            int32_t *row = sized(Scratch<A>::get().wa, n_w);
                            for (i64 r = ra; r < rb; ++r) {
                                const i64 o0 = r * n_w;
                                for (i64 j = 0; j < n_w; ++j) row[j] = origin[o0 + j] + split(ap[o0 + j]);
                                adds(r, r + 1, [&](i64 o) { return static_cast<i64>(row[o - o0]); });
                            }
                            return;
                        }
                    }
                    adds(ra, rb, target);
                };
                if (phase == 0) {  // the head's windows reach both sides of the cut; the rest, past it only
                    by_rows(r0, rh, [&](i64 ra, i64 rb, auto &&t) { scatter_rows_cut<true>(accp, dyp, n_w, ra, rb, cut[b], t); });
                    by_rows(rh, r1, [&](i64 ra, i64 rb, auto &&t) { scatter_rows(accp, dyp, n_w, ra, rb, t); });
                } else {
                    by_rows(r0, rh, [&](i64 ra, i64 rb, auto &&t) { scatter_rows_cut<false>(accp, dyp, n_w, ra, rb, cut[b], t); });
                }
            }
        });
    }
    if constexpr (!std::is_same<A, T>::value)
        parallel_for(g.planes * in_plane, grain, [&](i64 begin, i64 end) {
            for (i64 i = begin; i < end; ++i) dx[i] = static_cast<T>(acc[i]);
        });
}

// Max/min backward of small planes (lanes == 1, shared window origins, sums in T): the
// planes go kGroup at a time, one output cell of each in turn. Within a plane, adds to one
// cell follow each other closely (a 5x5 stride-1 window's winner wins up to 25 windows)
// and each waits on the last; the other planes' adds are independent work in between.
// On Zen 3, 8x256 planes of 40x40: spp's 13x13 backward 8.0 -> 5.7 ms at 1 thread,
// sppf's 5x5 about 10% faster.
constexpr i64 kGroup = 4;

// One group's adds: the targets of its G planes first (vectorised, into a buffer in L1),
// then the adds, one output cell of each plane in turn.
template <i64 G, class T, class I>
__attribute__((noinline)) void grouped_adds(T *acc, const T *gy, const I *a, const int32_t *origin,
                                            const CodeSplit &split, i64 in_plane, i64 out_plane) {
    std::fill(acc, acc + G * in_plane, T(0));
    int32_t *to = sized(Scratch<T>::get().wa, G * out_plane);
    for (i64 k = 0; k < G; ++k) {
        const I *ak = a + k * out_plane;
        int32_t *tk = to + k * out_plane;
        const int32_t shift = static_cast<int32_t>(k * in_plane);
        if constexpr (sizeof(I) == 1) {
            if (split.narrow_for<I>()) {
                i64 o = simd::narrow_targets(reinterpret_cast<const uint8_t *>(ak), origin, shift, tk, out_plane,
                                             split.by16, split.w16, split.step_h16, split.step_w16);
                for (; o < out_plane; ++o) tk[o] = origin[o] + split.narrow(ak[o]) + shift;
                continue;
            }
        }
        for (i64 o = 0; o < out_plane; ++o) tk[o] = origin[o] + split(ak[o]) + shift;
    }
    for (i64 o = 0; o < out_plane; ++o)
        for (i64 k = 0; k < G; ++k) acc[to[k * out_plane + o]] += gy[k * out_plane + o];
}

template <class T, class I>
void scatter_grouped(const T *dy, const I *arg, T *dx, const Geometry &g, const int32_t *origin, const CodeSplit &split) {
    const i64 in_plane = g.in_plane(), out_plane = g.out_plane();
    const i64 groups = g.planes / kGroup, rest = g.planes % kGroup;  // the rest go one by one
    parallel_for(groups + rest, std::max<i64>(1, 4096 / std::max<i64>(in_plane, 1)), [&](i64 begin, i64 end) {
        for (i64 u = begin; u < end; ++u) {
            const i64 p0 = u < groups ? u * kGroup : groups * kGroup + (u - groups);
            T *acc = dx + p0 * in_plane;
            const T *gy = dy + p0 * out_plane;
            const I *a = arg + p0 * out_plane;
            if (u < groups) grouped_adds<kGroup>(acc, gy, a, origin, split, in_plane, out_plane);
            else grouped_adds<1>(acc, gy, a, origin, split, in_plane, out_plane);
        }
    });
}

// Max/min backward, ties to the first winner: dx[winner] += dy. `arg` holds compact
// kernel offsets (I = uint8/uint16) or flat per-plane indices (I = int64, Flat).
template <class T, class I, bool Flat>
void scatter(const T *dy, const I *arg, T *dx, const Geometry &g) {
    using A = typename Acc<T>::type;
    bool disjoint = !Flat;
    for (int a = 0; a < 3; ++a) disjoint = disjoint && g.axis[a].disjoint();
    if (disjoint) return scatter_disjoint<T, I>(dy, arg, dx, g);
    const i64 lanes = g.lanes, in_plane = g.in_plane(), out_plane = g.out_plane(), cells = out_plane / lanes;
    if (in_plane >= (i64(1) << 31) - 16) return scatter_wide<T, I, Flat>(dy, arg, dx, g);
    bool per_plane = false;
    for (const Axis &ax : g.axis) per_plane = per_plane || ax.per_plane;
    std::vector<int32_t> rel;  // tap offsets in cells
    if (!Flat)
        for (i64 r : tap_offsets(g)) rel.push_back(static_cast<int32_t>(r));
    const std::vector<int32_t> shared = Flat || per_plane ? std::vector<int32_t>() : window_origins(g, 0);
    const int32_t *relp = rel.data();
    const CodeSplit split = Flat ? CodeSplit() : CodeSplit::of(g);
    if (lanes == 1 && !per_plane && in_plane >= (i64(1) << 16))  // large planes: by the size only, so
        return scatter_bands<T, I, Flat>(dy, arg, dx, g, shared.data(), relp, split);
    if (lanes == 1 && !per_plane && !Flat && std::is_same<A, T>::value && g.planes >= kGroup && split.ok())
        return scatter_grouped<T, I>(dy, arg, dx, g, shared.data(), split);
    // channels-last at baseline: 8-bit codes split in SSE2's 16-bit lanes (simd::narrow_targets)
    // where the steps times the lanes fit them, not by table lookups. On Zen 3, 8x256x40x40,
    // medians of 5 runs: sppf's backward 6.14 -> 4.92 ms at 1 thread, 3.95 -> 3.24 at 2;
    // spp's 8.26 -> 5.34 and 5.70 -> 4.61
    const i64 narrow_h = split.step_h16 * lanes, narrow_w = split.step_w16 * lanes;
    const bool narrow = lanes > 1 && split.narrow_for<I>() && narrow_h < 32768 && narrow_w < 32768;
    std::vector<int32_t> lane_index;
    if (narrow)
        for (i64 l = 0; l < lanes; ++l) lane_index.push_back(static_cast<int32_t>(l));
    for_planes(g, [&](i64 p, i64 l0, i64 l1) {
        T *dxp = dx + p * in_plane;
        const T *dyp = dy + p * out_plane;
        const I *ap = arg + p * out_plane;
        std::vector<int32_t> own;
        if (!Flat && per_plane) own = window_origins(g, p);
        const int32_t *origin = per_plane ? own.data() : shared.data();
        auto &sc = Scratch<A>::get();
        A *acc = std::is_same<A, T>::value ? reinterpret_cast<A *>(dxp) : sized(sc.a, in_plane);
        fill_lanes(acc, in_plane / lanes, lanes, l0, l1, A(0));
        if (lanes == 1) {
            if constexpr (Flat) scatter_rows(acc, dyp, cells, 0, 1, [&](i64 o) { return ap[o]; });
            else scatter_rows(acc, dyp, cells, 0, 1, [&](i64 o) { return origin[o] + relp[ap[o]]; });
        } else {  // channels-last: the lanes in between keep two adds to one cell apart
            for (i64 o = 0; o < cells; ++o) {
                const I *a = ap + o * lanes;
                const T *gy = dyp + o * lanes;
                if constexpr (Flat) {
                    for (i64 l = l0; l < l1; ++l) acc[a[l] * lanes + l] += static_cast<A>(gy[l]);
                } else {
                    A *cell = acc + static_cast<i64>(origin[o]) * lanes;
                    // every level runs these scalar adds: an AVX-512 gather/scatter of 16 lanes was twice
                    // as slow on Zen 5 (spp 4.52 -> 1.79 ms at 1 thread without it, 8x256x40x40)
                    i64 l = l0;
                    if (split.ok()) {  // the targets first, as in grouped_adds: no lookup in the adds' addresses
                        int32_t *to = sized(sc.wa, lanes);
                        const int32_t width = static_cast<int32_t>(lanes);
                        i64 m = l;
                        if constexpr (sizeof(I) == 1)
                            if (narrow)  // baseline: the steps scaled by the lanes, lane m's origin m
                                m += simd::narrow_targets(reinterpret_cast<const uint8_t *>(a + m), lane_index.data() + m, 0,
                                                          to + m, l1 - m, split.by16, split.w16, static_cast<int16_t>(narrow_h),
                                                          static_cast<int16_t>(narrow_w));
                        for (; m < l1; ++m) to[m] = split(a[m]) * width + static_cast<int32_t>(m);
                        for (; l < l1; ++l) cell[to[l]] += static_cast<A>(gy[l]);
                    }
                    for (; l < l1; ++l) cell[static_cast<i64>(relp[a[l]]) * lanes + l] += static_cast<A>(gy[l]);
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

// Mean backward of disjoint windows (each input cell under one window at most, along
// every axis): each output row's shares dy / divisor are made once and written into the
// first input row its windows cover, which the others copy; every input row is written
// once (0 where no window reaches), with no spread buffers, zero fill or sums. The
// shares are the general path's, to the bit. A work unit is one output row.
template <class T>
void spread_disjoint(const T *dy, const Divisor &divisor, T *dx, const Geometry &g) {
    using A = typename Acc<T>::type;
    const Owners own(g);
    const Axis D = g.axis[0], H = g.axis[1], W = g.axis[2];  // copies, as in scatter_disjoint
    const i64 lanes = g.lanes, width = W.n_in * lanes, out_rows = D.n_out * H.n_out;
    const i64 in_plane = g.in_plane(), out_plane = g.out_plane();
    const bool pairs = lanes == 1 && pairs_w(W);
    const i64 *ow_of = own.window[2].data();
    const double *div = divisor.factor[2];
    const std::vector<i64> uncovered = uncovered_rows(own, g);
    const i64 grain = std::max<i64>(1, 16384 / std::max<i64>(width * D.kernel * H.kernel, 1));
    parallel_for(g.planes * out_rows, grain, [&](i64 begin, i64 end) {
        T *__restrict share = sized(Scratch<T>::get().a, W.n_out * lanes);
        each_output_row(D.n_out, H.n_out, begin, end, [&](i64 p, i64 od, i64 oh) {
            const i64 r = od * H.n_out + oh;
            T *plane = dx + p * in_plane;
            if (r == 0)
                for (i64 row : uncovered) std::fill(plane + row * width, plane + (row + 1) * width, T(0));
            const T *__restrict gy = dy + p * out_plane + r * W.n_out * lanes;
            const double row_div = divisor.row(od, oh);
            if (lanes == 1) {
                for (i64 ow = 0; ow < W.n_out; ++ow)
                    share[ow] = static_cast<T>(static_cast<A>(gy[ow]) / static_cast<A>(row_div * div[ow]));
            } else {
                for (i64 ow = 0; ow < W.n_out; ++ow) {
                    const A dv = static_cast<A>(row_div * div[ow]);
                    for (i64 l = 0; l < lanes; ++l)
                        share[ow * lanes + l] = static_cast<T>(static_cast<A>(gy[ow * lanes + l]) / dv);
                }
            }
            const T *first = nullptr;
            for (i64 td = 0; td < D.count[od]; ++td)
                for (i64 th = 0; th < H.count[oh]; ++th) {
                    const i64 d = D.first[od] + td * D.step, h = H.first[oh] + th * H.step;
                    T *__restrict row = plane + (d * H.n_in + h) * width;
                    if (first != nullptr) {
                        std::copy(first, first + width, row);
                        continue;
                    }
                    first = row;
                    if (pairs) {  // GCC interleaves these with permutes
                        for (i64 ow = 0; ow < W.n_out; ++ow) row[2 * ow] = share[ow], row[2 * ow + 1] = share[ow];
                        if (2 * W.n_out < width) std::fill(row + 2 * W.n_out, row + width, T(0));
                        continue;
                    }
                    for (i64 w = 0; w < W.n_in; ++w) {
                        const i64 o = ow_of[w];
                        T *cell = row + w * lanes;
                        if (o < 0) std::fill(cell, cell + lanes, T(0));
                        else std::copy(share + o * lanes, share + (o + 1) * lanes, cell);
                    }
                }
        });
    });
}

// Mean backward: dy / divisor spread over every window's in-bounds taps. Each output row's
// spread along W is made once; each input row is then the sum of the spread rows of the
// windows covering it, and is written once.
template <class T>
void spread(const T *dy, const Divisor &divisor, T *dx, const Geometry &g) {
    using A = typename Acc<T>::type;
    const Axis &D = g.axis[0], &H = g.axis[1], &W = g.axis[2];
    const i64 lanes = g.lanes, in_plane = g.in_plane(), out_plane = g.out_plane();
    const i64 width = W.n_in * lanes, out_rows = D.n_out * H.n_out, in_rows = D.n_in * H.n_in;
    // planes too few for the threads are split by rows (cells for global pools)
    const bool few = g.planes < 2 * thread_count() && in_plane >= (i64(1) << 16);
    if (whole_planes(g)) {  // global pools: every cell gets dy / divisor
        const A dv = static_cast<A>(divisor.at(0, 0, 0));
        const i64 cells = in_plane / lanes, parts = few ? std::min<i64>(cells, 4 * thread_count()) : 1;
        parallel_for(g.planes * parts, parts > 1 ? 1 : std::max<i64>(1, 16384 / std::max<i64>(in_plane, 1)),
                     [&](i64 begin, i64 end) {
            std::vector<T> share(static_cast<size_t>(lanes));
            for (i64 u = begin; u < end; ++u) {
                const i64 p = u / parts, k = u % parts, c0 = k * cells / parts, c1 = (k + 1) * cells / parts;
                for (i64 l = 0; l < lanes; ++l) share[l] = static_cast<T>(static_cast<A>(dy[p * lanes + l]) / dv);
                T *dxp = dx + p * in_plane;
                if (lanes == 1) std::fill(dxp + c0, dxp + c1, share[0]);
                else for (i64 c = c0; c < c1; ++c) std::copy(share.begin(), share.end(), dxp + c * lanes);
            }
        });
        return;
    }
    bool disjoint = true;
    for (int a = 0; a < 3; ++a) disjoint = disjoint && g.axis[a].disjoint();
    if (disjoint) return spread_disjoint<T>(dy, divisor, dx, g);
    const Covers cover(g);
    const bool row_path = lanes == 1 && W.stride > 0 && !W.per_plane && row_buffer_fits(W);
    const i64 stride = std::max<i64>(W.stride, 1);
    const i64 length = (W.n_out - 1) * stride + (W.kernel - 1) * W.step + 1;
    const i64 start0 = W.first[0] - W.skip[0] * W.step;
    const i64 lo = std::clamp<i64>(-start0, 0, length), hi = std::clamp<i64>(W.n_in - start0, lo, length);
    // output row r's spread along W, into t[width]; q: a padded row (row_path), share[n_out * lanes]
    auto spread_row = [&](const T *dyp, i64 r, A *t, A *q, A *share) {
        if (row_path) {  // sliding windows along W: every tap is a strided add
            const double row_div = divisor.row(r / H.n_out, r % H.n_out);
            const double *div = divisor.factor[2];
            const T *gy = dyp + r * W.n_out;
            for (i64 ow = 0; ow < W.n_out; ++ow) share[ow] = static_cast<A>(gy[ow]) / static_cast<A>(row_div * div[ow]);
            std::fill(q, q + length, A(0));
            for (i64 k = 0; k < W.kernel; ++k) {
                A *qk = q + k * W.step;
                if (stride == 1) for (i64 ow = 0; ow < W.n_out; ++ow) qk[ow] += share[ow];
                else if (stride == 2) for (i64 ow = 0; ow < W.n_out; ++ow) qk[2 * ow] += share[ow];
                else for (i64 ow = 0; ow < W.n_out; ++ow) qk[ow * stride] += share[ow];
            }
            std::fill(t, t + width, A(0));
            std::copy(q + lo, q + hi, t + start0 + lo);
            return;
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
    };
    // input row r of one plane: the sum of the spread rows of the windows covering it
    auto input_row = [&](const A *spread_rows, T *dxp, i64 r, A *sum) {
        const i64 d = r / H.n_in, h = r % H.n_in;
        T *row = dxp + r * width;
        const i64 nd = cover.begin[0][d + 1] - cover.begin[0][d];
        const i64 nh = cover.begin[1][h + 1] - cover.begin[1][h];
        if (nd * nh == 1) {  // disjoint windows: a converted copy
            const A *t = spread_rows + (cover.window[0][cover.begin[0][d]] * H.n_out +
                                        cover.window[1][cover.begin[1][h]]) * width;
            for (i64 c = 0; c < width; ++c) row[c] = static_cast<T>(t[c]);
            return;
        }
        std::fill(sum, sum + width, A(0));
        for (i64 i = cover.begin[0][d]; i < cover.begin[0][d + 1]; ++i)
            for (i64 j = cover.begin[1][h]; j < cover.begin[1][h + 1]; ++j) {
                const A *t = spread_rows + (cover.window[0][i] * H.n_out + cover.window[1][j]) * width;
                for (i64 c = 0; c < width; ++c) sum[c] += t[c];
            }
        for (i64 c = 0; c < width; ++c) row[c] = static_cast<T>(sum[c]);
    };
    bool single = true;  // every input row under at most one output row (disjoint along D and H)
    for (int a = 0; a < 2; ++a)
        for (size_t i = 0; i + 1 < cover.begin[a].size(); ++i) single = single && cover.begin[a][i + 1] - cover.begin[a][i] <= 1;
    if (few && single) {  // each output row's spread made once, written to the input rows it alone covers
        parallel_for(g.planes * out_rows, 1, [&](i64 begin, i64 end) {
            auto &sc = Scratch<A>::get();
            A *t = sized(sc.a, width), *q = sized(sc.b, length), *share = sized(sc.row, W.n_out * lanes);
            for (i64 u = begin; u < end; ++u) {
                const i64 p = u / out_rows, o = u % out_rows, od = o / H.n_out, oh = o % H.n_out;
                spread_row(dy + p * out_plane, o, t, q, share);
                for (i64 td = 0; td < D.count[od]; ++td)
                    for (i64 th = 0; th < H.count[oh]; ++th) {
                        const i64 r = (D.first[od] + td * D.step) * H.n_in + H.first[oh] + th * H.step;
                        T *row = dx + p * in_plane + r * width;
                        for (i64 c = 0; c < width; ++c) row[c] = static_cast<T>(t[c]);
                    }
            }
        });
        parallel_for(g.planes * in_rows, 64, [&](i64 begin, i64 end) {  // rows no window reaches
            for (i64 u = begin; u < end; ++u) {
                const i64 r = u % in_rows, d = r / H.n_in, h = r % H.n_in;
                if (cover.begin[0][d + 1] == cover.begin[0][d] || cover.begin[1][h + 1] == cover.begin[1][h])
                    std::fill(dx + (u / in_rows) * in_plane + r * width, dx + (u / in_rows) * in_plane + (r + 1) * width, T(0));
            }
        });
        return;
    }
    if (few) {  // every plane's spread rows at once, then its input rows, each split by rows
        std::vector<A> spread_rows(static_cast<size_t>(g.planes * out_rows * width));
        parallel_for(g.planes * out_rows, 1, [&](i64 begin, i64 end) {
            auto &sc = Scratch<A>::get();
            A *q = sized(sc.b, length), *share = sized(sc.row, W.n_out * lanes);
            for (i64 u = begin; u < end; ++u)
                spread_row(dy + (u / out_rows) * out_plane, u % out_rows, spread_rows.data() + u * width, q, share);
        });
        parallel_for(g.planes * in_rows, 1, [&](i64 begin, i64 end) {
            A *sum = sized(Scratch<A>::get().b, width);
            for (i64 u = begin; u < end; ++u)
                input_row(spread_rows.data() + (u / in_rows) * out_rows * width, dx + (u / in_rows) * in_plane,
                          u % in_rows, sum);
        });
        return;
    }
    parallel_for(g.planes, std::max<i64>(1, 16384 / std::max<i64>(in_plane, 1)), [&](i64 begin, i64 end) {
        auto &sc = Scratch<A>::get();
        A *spread_rows = sized(sc.a, out_rows * width);
        A *sum = sized(sc.b, std::max(width, length));
        A *share = sized(sc.row, W.n_out * lanes);
        std::vector<A> pad_row(row_path ? static_cast<size_t>(length) : 0);
        for (i64 p = begin; p < end; ++p) {
            const T *dyp = dy + p * out_plane;
            for (i64 r = 0; r < out_rows; ++r) spread_row(dyp, r, spread_rows + r * width, pad_row.data(), share);
            for (i64 r = 0; r < in_rows; ++r) input_row(spread_rows, dx + p * in_plane, r, sum);
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

// Max-unpooling: y = 0 with x written at the flat per-plane indices (the last write wins,
// so each plane's writes stay in one thread; its zero fill is split when planes are few).
template <class T>
void unpool(const T *x, const int64_t *index, T *y, i64 planes, i64 n_in, i64 n_out) {
    const bool few = planes < 2 * thread_count() && n_out >= (i64(1) << 16);
    if (few)
        parallel_for(planes * n_out, i64(1) << 14, [&](i64 begin, i64 end) { std::fill(y + begin, y + end, T(0)); });
    parallel_for(planes, std::max<i64>(1, 16384 / std::max<i64>(n_out, 1)), [&](i64 begin, i64 end) {
        for (i64 p = begin; p < end; ++p) {
            T *yp = y + p * n_out;
            if (!few) std::fill(yp, yp + n_out, T(0));
            for (i64 i = 0; i < n_in; ++i) yp[index[p * n_in + i]] = x[p * n_in + i];
        }
    });
}

// Its gradient: dx = dy at the indices, a gather, split over all of dx.
template <class T>
void unpool_backward(const T *dy, const int64_t *index, T *dx, i64 planes, i64 n_in, i64 n_out) {
    parallel_for(planes * n_in, i64(1) << 12, [&](i64 begin, i64 end) {
        for (i64 i = begin; i < end; ++i) dx[i] = dy[(i / n_in) * n_out + index[i]];
    });
}

}  // namespace ndpool
