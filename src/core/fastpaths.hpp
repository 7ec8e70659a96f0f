// Fast paths beside the engine, chosen by the dispatcher in forward_dispatch():
//  - rows: sliding windows without indices; per output row, reduce the window's input
//    rows into one padded row in L1 (contiguous, vectorised), then reduce its taps along
//    W with the stride; the output is written once. Serves 2x2/3x3 stride 2, 2x2x2 and
//    channels-last data (lanes innermost).
//  - planes: windows covering the whole plane (global pools): one contiguous reduction
//    per plane with independent partial results the compiler vectorises.
//  - separable: large stride-1 max/min windows (SPP, a scientist's k x k filter), W then
//    H in L1-sized bands; running winners and running sums for vjp and large averages.
#pragma once

#include <utility>

#include "engine.hpp"

namespace ndpool {

template <class R, class A>
inline A combine(A v, A acc) {
    if constexpr (R::extreme) return R::take(v, acc) ? v : acc;
    else return acc + v;
}

// Whether an output of `bytes` at y is written around the caches (simd::stream): one
// too big to stay in them for whoever reads it next, aligned to whole lines. On Zen 3
// (AVX2), 2 threads: 8x256x40x40 float32 channels-last (13 MB), sppf's 5x5 forward
// 2.75 -> 1.84 ms, spp's 13x13 3.94 -> 3.40 ms; a 512^3 volume's 2x2x2 max about 5% less.
constexpr i64 kStreamBytes = i64(8) << 20;
inline bool streams(const void *y, i64 bytes) {
    return bytes >= kStreamBytes && reinterpret_cast<uintptr_t>(y) % 64 == 0;
}

// Writes one output row from the reduced `acc` (a mean divides by its divisor); `stream`:
// around the caches (simd::stream_copy, the quotients made in acc first).
template <class T, class A>
inline void write_row(const Outputs &out, A *acc, i64 n_out, i64 lanes, i64 at, i64 od, i64 oh, bool stream = false) {
    T *y = static_cast<T *>(out.y) + at;
    if constexpr (std::is_same<T, A>::value) {
        if (stream) {
            if (out.divisor) {
                const double row_div = out.divisor.row(od, oh);
                const double *div = out.divisor.factor[2];
                if (lanes == 1) {
                    for (i64 o = 0; o < n_out; ++o) acc[o] = acc[o] / static_cast<A>(row_div * div[o]);
                } else {
                    for (i64 o = 0; o < n_out; ++o) {
                        const A dv = static_cast<A>(row_div * div[o]);
                        for (i64 l = 0; l < lanes; ++l) acc[o * lanes + l] = acc[o * lanes + l] / dv;
                    }
                }
            }
            simd::stream_copy(acc, y, n_out * lanes);
            return;
        }
    }
    if (out.divisor) {
        const double row_div = out.divisor.row(od, oh);
        const double *div = out.divisor.factor[2];
        if (lanes == 1) {
            for (i64 o = 0; o < n_out; ++o) y[o] = static_cast<T>(acc[o] / static_cast<A>(row_div * div[o]));
        } else {
            for (i64 o = 0; o < n_out; ++o) {
                const A dv = static_cast<A>(row_div * div[o]);
                for (i64 l = 0; l < lanes; ++l) y[o * lanes + l] = static_cast<T>(acc[o * lanes + l] / dv);
            }
        }
    } else {
        for (i64 i = 0; i < n_out * lanes; ++i) y[i] = static_cast<T>(acc[i]);
    }
}

// Channels-last sums with every W tap in bounds: each output cell's lanes are summed a
// vector register's worth at a time (B lanes held in registers across all of the
// window's taps, in scan order) and written straight to y, divided on the way: 12% faster
// than accumulating rows in memory. Max/min keep that loop: GCC does not vectorise their
// NaN-aware select over a register block. `rows` are the window's input rows.
template <class R, class T, class A, i64 B>
inline void lane_block(const void *const *rows, i64 n_rows, i64 at, i64 kernel, i64 tap, A *r) {
    for (i64 l = 0; l < B; ++l) r[l] = R::template identity<A>();
    for (i64 j = 0; j < n_rows; ++j)
        for (i64 k = 0; k < kernel; ++k) {
            const T *t = static_cast<const T *>(rows[j]) + at + k * tap;
            for (i64 l = 0; l < B; ++l) r[l] = combine<R>(static_cast<A>(t[l]), r[l]);
        }
}

template <class R, class T, class A>
void lanes_row(const void *const *rows, i64 n_rows, const Axis &W, i64 lanes, const Outputs &out,
               i64 od, i64 oh, T *y) {
    constexpr i64 B = 64 / sizeof(A);
    const i64 stride = std::max<i64>(W.stride, 1), tap = W.step * lanes, full = lanes - lanes % B;
    const double row_div = out.divisor ? out.divisor.row(od, oh) : 1.0;
    A r[B];
    for (i64 o = 0; o < W.n_out; ++o) {
        const i64 at = o * stride * lanes;
        T *yo = y + o * lanes;
        const A dv = static_cast<A>(out.divisor ? row_div * out.divisor.factor[2][o] : 1.0);
        auto put = [&](i64 l0, i64 n) {
            if (out.divisor) {
                for (i64 l = 0; l < n; ++l) yo[l0 + l] = static_cast<T>(r[l] / dv);
            } else {
                for (i64 l = 0; l < n; ++l) yo[l0 + l] = static_cast<T>(r[l]);
            }
        };
        for (i64 l0 = 0; l0 < full; l0 += B) {
            lane_block<R, T, A, B>(rows, n_rows, at + l0, W.kernel, tap, r);
            put(l0, B);
        }
        if (full < lanes) {  // the last lanes, fewer than a register
            const i64 n = lanes - full;
            for (i64 l = 0; l < n; ++l) r[l] = R::template identity<A>();
            for (i64 j = 0; j < n_rows; ++j)
                for (i64 k = 0; k < W.kernel; ++k) {
                    const T *t = static_cast<const T *>(rows[j]) + at + full + k * tap;
                    for (i64 l = 0; l < n; ++l) r[l] = combine<R>(static_cast<A>(t[l]), r[l]);
                }
            put(full, n);
        }
    }
}

template <class R, class T, class A>
void forward_rows(const T *x, const Geometry &g, const Outputs &out) {
    const Axis &D = g.axis[0], &H = g.axis[1], &W = g.axis[2];
    const i64 lanes = g.lanes, rows = D.n_out * H.n_out, n_out = W.n_out;
    const i64 in_plane = g.in_plane(), out_plane = g.out_plane();
    const i64 stride = std::max<i64>(W.stride, 1);
    const i64 length = (n_out - 1) * stride + (W.kernel - 1) * W.step + 1;
    const i64 start0 = W.first[0] - W.skip[0] * W.step;  // -pad_lo
    const i64 lo = std::clamp<i64>(-start0, 0, length), hi = std::clamp<i64>(W.n_in - start0, lo, length);
    const i64 grain = std::max<i64>(1, 16384 / std::max<i64>(1, length * lanes * H.kernel * D.kernel));
    const bool pairs = lanes == 1 && pairs_w(W);
    const bool direct = lanes > 1 && lo == 0 && hi == length;  // every W tap in bounds
    const bool check_nan = R::extreme && D.kernel * H.kernel * W.kernel >= 16;
    // outputs too big for the caches, in rows of whole lines, go around them when the
    // threads are several: one thread is not held up by memory (on Zen 3 it was 5-10%
    // slower so, on vgg_max and a 512^3 volume), all of them are
    const bool stream = thread_count() > 1 && streams(out.y, g.planes * out_plane * static_cast<i64>(sizeof(T))) &&
                        n_out * lanes * static_cast<i64>(sizeof(T)) % 64 == 0;
    parallel_for(g.planes * rows, grain, [&](i64 begin, i64 end) {
        auto &sc = Scratch<A>::get();
        A *m = sized(sc.row, length * lanes);
        A *acc = sized(sc.a, n_out * lanes);
        auto finish = [&](i64 p, i64 r, i64 od, i64 oh) {
            write_row<T, A>(out, acc, n_out, lanes, p * out_plane + r * n_out * lanes, od, oh, stream);
        };
        std::fill(m, m + lo * lanes, R::template identity<A>());
        std::fill(m + hi * lanes, m + length * lanes, R::template identity<A>());
        A *mid = m + lo * lanes;
        const i64 n = (hi - lo) * lanes;
        i64 seen[64];  // input rows (keyed by plane and row) already checked for NaN
        bool has_nan[64];
        std::fill(seen, seen + 64, i64(-1));
        for (i64 u = begin; u < end; ++u) {
            const i64 p = u / rows, r = u % rows, od = r / H.n_out, oh = r % H.n_out;
            if (pairs) {  // 2-tap stride-2 W windows: reduce straight from the input rows
                bool first = true;
                for (i64 td = 0; td < D.count[od]; ++td)
                    for (i64 th = 0; th < H.count[oh]; ++th) {
                        const i64 row = (D.first[od] + td * D.step) * H.n_in + H.first[oh] + th * H.step;
                        const T *src = x + p * in_plane + row * W.n_in;
                        for (i64 o = 0; o < n_out; ++o) {
                            const A v = combine<R>(static_cast<A>(src[2 * o + 1]), static_cast<A>(src[2 * o]));
                            acc[o] = first ? v : combine<R>(v, acc[o]);
                        }
                        first = false;
                    }
                finish(p, r, od, oh);
                continue;
            }
            if (direct && !R::extreme) {  // channels-last sums, no padding along W: register blocks
                const void **row_ptr = sized(sc.rows, D.count[od] * H.count[oh]);
                i64 n_rows = 0;
                for (i64 td = 0; td < D.count[od]; ++td)
                    for (i64 th = 0; th < H.count[oh]; ++th) {
                        const i64 row = (D.first[od] + td * D.step) * H.n_in + H.first[oh] + th * H.step;
                        row_ptr[n_rows++] = x + p * in_plane + (row * W.n_in + start0) * lanes;
                    }
                lanes_row<R, T, A>(row_ptr, n_rows, W, lanes, out, od, oh,
                                   static_cast<T *>(out.y) + p * out_plane + r * n_out * lanes);
                continue;
            }
            if (direct) {  // channels-last extremes, no padding along W: taps read the input rows
                bool first = true;
                for (i64 td = 0; td < D.count[od]; ++td)
                    for (i64 th = 0; th < H.count[oh]; ++th) {
                        const i64 row = (D.first[od] + td * D.step) * H.n_in + H.first[oh] + th * H.step;
                        const T *src = x + p * in_plane + (row * W.n_in + start0) * lanes;
                        for (i64 o = 0; o < n_out; ++o) {
                            A *a = acc + o * lanes;
                            for (i64 k = 0; k < W.kernel; ++k) {
                                const T *t = src + (o * stride + k * W.step) * lanes;
                                if (first && k == 0) {
                                    for (i64 l = 0; l < lanes; ++l) a[l] = static_cast<A>(t[l]);
                                } else {
                                    for (i64 l = 0; l < lanes; ++l) a[l] = combine<R>(static_cast<A>(t[l]), a[l]);
                                }
                            }
                        }
                        first = false;
                    }
                finish(p, r, od, oh);
                continue;
            }
            const T *plane = x + p * in_plane + (start0 + lo) * lanes;
            if (oh + 1 < H.n_out) {  // the next output row's last input row: fetch it early
                const i64 ahead = (D.first[od] + (D.count[od] - 1) * D.step) * H.n_in + H.first[oh + 1] +
                                  (H.count[oh + 1] - 1) * H.step;
                const char *line = reinterpret_cast<const char *>(plane + ahead * W.n_in * lanes);
                for (i64 b = 0; b < n * static_cast<i64>(sizeof(T)); b += 64) __builtin_prefetch(line + b);
            }
            // a NaN-free window's rows take a plain max/min (one instruction a vector instead of
            // four); each input row is checked once per run of this thread's output rows. Not
            // worth its check below 16 taps (stem's 3x3 stride 2: 5% more instructions).
            bool nan = !check_nan;
            if constexpr (R::extreme && std::is_floating_point<A>::value) {
                for (i64 td = 0; check_nan && td < D.count[od]; ++td)
                    for (i64 th = 0; th < H.count[oh]; ++th) {
                        const i64 row = (D.first[od] + td * D.step) * H.n_in + H.first[oh] + th * H.step;
                        const i64 key = p * D.n_in * H.n_in + row, slot = row & 63;
                        if (seen[slot] != key) {
                            const T *src = plane + row * W.n_in * lanes;
                            int found = 0;
                            for (i64 i = 0; i < n; ++i) found |= src[i] != src[i];
                            seen[slot] = key, has_nan[slot] = found != 0;
                        }
                        nan = nan || has_nan[slot];
                    }
            }
            auto reduce = [&](auto reducer) {
                using Q = decltype(reducer);
                const T *held = nullptr;  // the first row, combined with the second in one pass
                i64 seen_rows = 0;
                for (i64 td = 0; td < D.count[od]; ++td)
                    for (i64 th = 0; th < H.count[oh]; ++th) {
                        const i64 row = (D.first[od] + td * D.step) * H.n_in + H.first[oh] + th * H.step;
                        const T *src = plane + row * W.n_in * lanes;
                        if (seen_rows == 0) {
                            held = src;
                        } else if (seen_rows == 1) {
                            for (i64 i = 0; i < n; ++i) mid[i] = combine<Q>(static_cast<A>(src[i]), static_cast<A>(held[i]));
                        } else {
                            for (i64 i = 0; i < n; ++i) mid[i] = combine<Q>(static_cast<A>(src[i]), mid[i]);
                        }
                        ++seen_rows;
                    }
                if (seen_rows == 1)
                    for (i64 i = 0; i < n; ++i) mid[i] = static_cast<A>(held[i]);
                if (seen_rows == 0) std::fill(mid, mid + n, R::template identity<A>());
                if (lanes == 1) {
                    if (stride == 1) {
                        for (i64 k = 1; k < W.kernel; ++k) {
                            const A *t = m + k * W.step, *before = k == 1 ? m : acc;
                            for (i64 o = 0; o < n_out; ++o) acc[o] = combine<Q>(t[o], before[o]);
                        }
                        if (W.kernel == 1) std::copy(m, m + n_out, acc);
                    } else if (stride == 2) {  // deinterleaved once: every tap reads contiguous cells
                        // (stem's 3x3 stride 2 at avx2: the strided reads took ~4 instructions a
                        // cell and tap, half of the forward's, callgrind)
                        const i64 half = (length + 1) / 2;
                        A *even = sized(sc.b, 2 * half), *odd = even + half;
                        for (i64 j = simd::deinterleave(m, even, odd, length / 2); j < length / 2; ++j)
                            even[j] = m[2 * j], odd[j] = m[2 * j + 1];
                        if (length % 2) even[length / 2] = m[length - 1];
                        for (i64 k = 1; k < W.kernel; ++k) {
                            const i64 at = k * W.step;  // m[2o + at]
                            const A *t = at % 2 ? odd + (at - 1) / 2 : even + at / 2;
                            const A *before = k == 1 ? even : acc;  // tap 0 joins tap 1's pass
                            for (i64 o = 0; o < n_out; ++o) acc[o] = combine<Q>(t[o], before[o]);
                        }
                        if (W.kernel == 1) std::copy(even, even + n_out, acc);
                    } else {
                        for (i64 o = 0; o < n_out; ++o) acc[o] = m[o * stride];
                        for (i64 k = 1; k < W.kernel; ++k) {
                            const A *t = m + k * W.step;
                            for (i64 o = 0; o < n_out; ++o) acc[o] = combine<Q>(t[o * stride], acc[o]);
                        }
                    }
                } else {
                    for (i64 o = 0; o < n_out; ++o) {
                        A *a = acc + o * lanes;
                        const A *t = m + o * stride * lanes;
                        for (i64 l = 0; l < lanes; ++l) a[l] = t[l];
                        for (i64 k = 1; k < W.kernel; ++k) {
                            const A *tk = t + k * W.step * lanes;
                            for (i64 l = 0; l < lanes; ++l) a[l] = combine<Q>(tk[l], a[l]);
                        }
                    }
                }
            };
            if constexpr (R::extreme && std::is_floating_point<A>::value) {
                if (nan) reduce(R{});
                else reduce(NanFree<R>{});
            } else {
                reduce(R{});  // integers: no NaN, so one reducer (one copy of this code)
            }
            finish(p, r, od, oh);
        }
        if (stream) simd::stream_fence();
    });
}

// The width the vector code below is written for: one register of the level
// (64 bytes AVX-512, 32 AVX2, 16 SSE2 and NEON), but channels-first rows take at most 32
// (kValues): a row rounded up to a wider unit spends a fifth of every pass on sppf's
// 40-cell rows past their end (48 cells).
#if defined(__AVX512F__)
constexpr i64 kVectorBytes = 64;
#elif defined(__AVX2__)
constexpr i64 kVectorBytes = 32;
#else
constexpr i64 kVectorBytes = 16;
#endif

// The tree within one register of lanes J...: lane j combined with lane j + H into lane
// j, for H = half the lanes, then a quarter, down to 1; lane 0 ends with the total.
template <class R, int H, class V, int... J>
inline V fold_lanes(V t, std::integer_sequence<int, J...> lanes) {
    if constexpr (H == 0) return t;
    else return fold_lanes<R, H / 2>(combine<R>(__builtin_shufflevector(t, t, (J % H + H)...), t), lanes);
}

// M planes of `cells` cells each (lanes == 1), one after another from src, into acc[M]:
// per plane, eight independent partials (the loop vectorises) combined by a tree (part
// j + 4 into part j, then j + 2, then 1), then the tail in order, so M = 4 gives each
// plane the bits M = 1 gives it. Four planes at a time interleave their chains: one at a
// time, a global pool of 7x7 planes waited on each plane's chain of six vector adds.
template <class R, class T, class A, int M>
inline void reduce_small_planes(const T *src, i64 cells, A *acc) {
    // the partials in K registers of L lanes, the tree and the tail in them too: as
    // scalars, a max's data-dependent selects were branches, half of them mispredicted on
    // random data (a global max of 7x7 float32 planes took 6.8x its mean's time on Zen 3
    // avx2, float16 3x PyTorch's). Wider vectors than the level's, left to GCC, became
    // scalar code.
    constexpr int P = 8;
    constexpr int W = static_cast<int>(std::min<i64>(P * sizeof(A), kVectorBytes));
    constexpr int L = W / static_cast<int>(sizeof(A)), K = P / L;
    typedef A Part __attribute__((vector_size(W)));
    typedef A PartIn __attribute__((vector_size(W), aligned(alignof(A))));
    auto load = [](const T *s) {
        if constexpr (std::is_same<T, A>::value) {
            return *reinterpret_cast<const PartIn *>(s);
        } else {  // float16: converted lane by lane (F16C where the level has it)
            Part v;
            for (int j = 0; j < L; ++j) v[j] = static_cast<A>(s[j]);
            return v;
        }
    };
    Part v[M][K];
    for (int m = 0; m < M; ++m)
        for (int k = 0; k < K; ++k)
            for (int j = 0; j < L; ++j) v[m][k][j] = R::template identity<A>();
    i64 i = 0;
    for (; i + P <= cells; i += P)
        for (int m = 0; m < M; ++m)
            for (int k = 0; k < K; ++k) v[m][k] = combine<R>(load(src + m * cells + i + k * L), v[m][k]);
    for (int m = 0; m < M; ++m) {
        Part *t = v[m];
        for (int n = K / 2; n >= 1; n /= 2)  // the tree's steps across registers
            for (int k = 0; k < n; ++k) t[k] = combine<R>(t[k + n], t[k]);
        Part u = fold_lanes<R, L / 2>(t[0], std::make_integer_sequence<int, L>{});  // and within one
        for (i64 k = i; k < cells; ++k) {  // lane 0 holds the total
            Part c = u;
            c[0] = static_cast<A>(src[m * cells + k]);
            u = combine<R>(c, u);
        }
        acc[m] = u[0];
    }
}

// The extreme or sum of `cells` cells of `lanes` values each, per lane, into acc[lanes].
template <class R, class T, class A>
inline void reduce_cells(const T *src, i64 cells, i64 lanes, A *acc) {
    if (lanes == 1) return reduce_small_planes<R, T, A, 1>(src, cells, acc);
    for (i64 l = 0; l < lanes; ++l) acc[l] = static_cast<A>(src[l]);
    i64 c = 1;
    for (; c + 4 <= cells; c += 4) {  // four cells per pass over acc, in order
        const T *s0 = src + c * lanes, *s1 = s0 + lanes, *s2 = s1 + lanes, *s3 = s2 + lanes;
        for (i64 l = 0; l < lanes; ++l)
            acc[l] = combine<R>(static_cast<A>(s3[l]),
                                combine<R>(static_cast<A>(s2[l]),
                                           combine<R>(static_cast<A>(s1[l]), combine<R>(static_cast<A>(s0[l]), acc[l]))));
    }
    for (; c < cells; ++c)
        for (i64 l = 0; l < lanes; ++l) acc[l] = combine<R>(static_cast<A>(src[c * lanes + l]), acc[l]);
}

// Whole-plane (global) reductions. Large planes (one huge image or volume) are cut into
// parts of cells, each reduced on its own and combined in order; the parts depend on the
// plane's size only, so a mean rounds the same at any thread count.
template <class R, class T, class A>
void reduce_planes(const T *x, const Geometry &g, const Outputs &out) {
    const i64 lanes = g.lanes, cells = g.in_plane() / lanes;
    const A scale = out.divisor ? static_cast<A>(out.divisor.at(0, 0, 0)) : A(1);
    auto put = [&](i64 p, const A *acc) {
        T *y = static_cast<T *>(out.y) + p * lanes;
        for (i64 l = 0; l < lanes; ++l) y[l] = static_cast<T>(out.divisor ? acc[l] / scale : acc[l]);
    };
    const i64 parts = std::min<i64>({64, std::max<i64>(1, g.in_plane() >> 16), cells});
    if (parts == 1) {
        const i64 grain = std::max<i64>(1, 16384 / std::max<i64>(1, g.in_plane()));
        parallel_for(g.planes, grain, [&](i64 begin, i64 end) {
            A *acc = sized(Scratch<A>::get().a, lanes);
            i64 p = begin;
            if (lanes == 1 && cells <= 256) {  // small planes, four at a time
                A four[4];
                for (; p + 4 <= end; p += 4) {
                    reduce_small_planes<R, T, A, 4>(x + p * cells, cells, four);
                    for (int k = 0; k < 4; ++k) put(p + k, four + k);
                }
            }
            for (; p < end; ++p) {
                reduce_cells<R, T, A>(x + p * cells * lanes, cells, lanes, acc);
                put(p, acc);
            }
        });
        return;
    }
    std::vector<A> partial(static_cast<size_t>(g.planes * parts * lanes));
    parallel_for(g.planes * parts, 1, [&](i64 begin, i64 end) {
        for (i64 u = begin; u < end; ++u) {
            const i64 p = u / parts, k = u % parts, c0 = k * cells / parts, c1 = (k + 1) * cells / parts;
            reduce_cells<R, T, A>(x + (p * cells + c0) * lanes, c1 - c0, lanes, partial.data() + u * lanes);
        }
    });
    for (i64 p = 0; p < g.planes; ++p) {
        A *acc = partial.data() + p * parts * lanes;  // parts combined in scan order into the first
        for (i64 k = 1; k < parts; ++k)
            for (i64 l = 0; l < lanes; ++l) acc[l] = combine<R>(acc[k * lanes + l], acc[l]);
        put(p, acc);
    }
}

// Large stride-1 windows of max/min (SPP's 5x5 to 13x13): cost independent of the
// kernel height by van Herk / Gil-Werman running extremes over rows (prefix and suffix
// extremes within blocks of kH rows, each a vectorised row operation), and logarithmic
// in the kernel width by doubling spans along the row (forward_running_indices), or
// separable (forward_separable). The passes read one H x W plane per plane: a volume's
// D slices (D.n_in > 1, even with a depth-1 kernel) go elsewhere.
inline bool running_fits(const Geometry &g, bool any_lanes = false) {
    const Axis &D = g.axis[0], &H = g.axis[1], &W = g.axis[2];
    return (g.lanes == 1 || any_lanes) && D.trivial && D.n_in == 1 && H.stride == 1 && H.step == 1 && H.kernel >= 4 && !H.per_plane &&
           W.stride == 1 && W.step == 1 && !W.per_plane && row_buffer_fits(H) && row_buffer_fits(W);
}

// One plane copied into `rows` padded rows of `length` cells, identity outside the
// input: rows [top, top + rows) and columns [left, left + length) of the input, which
// may start in the padding.
template <class A, class T>
inline void padded_plane(const T *plane, const Geometry &g, i64 top, i64 left, i64 rows, i64 length, A identity,
                         A *padded) {
    const Axis &H = g.axis[1], &W = g.axis[2];
    const i64 lo = std::clamp<i64>(-left, 0, length), hi = std::clamp<i64>(W.n_in - left, lo, length);
    for (i64 j = 0; j < rows; ++j) {
        A *row = padded + j * length;
        const i64 h = top + j;
        std::fill(row, row + length, identity);
        if (h < 0 || h >= H.n_in) continue;
        const T *src = plane + h * W.n_in + left;
        for (i64 b = lo; b < hi; ++b) row[b] = static_cast<A>(src[b]);
    }
}

// Output rows per work unit of a running pass: bands, so that a unit's row buffers
// (`line_bytes` a padded row) stay in the core's cache and one big image gives every
// thread work. A band is four windows tall where the buffers allow (each re-reads kH - 1 rows). The size
// depends on the geometry only, never on the thread count: a running sum restarts at
// each band, and results must not change with the threads.
inline i64 band_rows(i64 oH, i64 kH, i64 line_bytes) {
    const i64 cache_rows = (i64(1) << 20) / std::max<i64>(line_bytes * 4, 1);
    return std::min(oH, std::max(cache_rows, std::min(4 * kH, 4 * cache_rows)));
}

inline i64 round_up(i64 n, i64 v) { return (n + v - 1) / v * v; }

// One vector register's worth of A (GCC's vector types: the same source compiles to
// the level's instructions, and a max/min of two is one instruction where the level has it).
template <class A, i64 V>
struct VectorOf {
    typedef A type __attribute__((vector_size(V * sizeof(A))));
    typedef A unaligned __attribute__((vector_size(V * sizeof(A)), aligned(alignof(A))));
};
template <class A, i64 V>
using Vec = typename VectorOf<A, V>::type;

template <i64 V, class A>
inline Vec<A, V> load(const A *p) { return *reinterpret_cast<const typename VectorOf<A, V>::unaligned *>(p); }

template <i64 V, class A>
inline void store(A *p, Vec<A, V> v) { *reinterpret_cast<typename VectorOf<A, V>::unaligned *>(p) = v; }

// The values per vector of the passes over cells of L values: one register of the
// level, but at most 32 bytes for channels-first rows (L = 1). AVX-512's 16 floats
// round SPP's 40-cell rows up to 48, and on Zen 5 (1 thread, 8x256x40x40 float32)
// 32 bytes took spp's forward 3.1 -> 2.0 ms and sppf's 1.5 -> 1.15 ms, while the
// channels-last lanes kept 64 (spp 1.4 ms there against 3.5 with 32).
template <class A, i64 L>
constexpr i64 kValues = (L == 1 ? std::min<i64>(kVectorBytes, 32) : kVectorBytes) / static_cast<i64>(sizeof(A));

// The W windows of one padded row with K taps (K <= 8), unrolled: out[c] = the extreme
// of pr[c + k L] over k < K for c < n (n a multiple of V; L values a cell: 1 for a
// channels-first row, a chunk of lanes for channels-last), later taps taking over from
// earlier ones by R::take (scan order).
template <class R, class A, i64 V, int K, i64 L>
void row_taps(const A *__restrict pr, i64 n, A *__restrict out) {
    for (i64 c = 0; c < n; c += V) {
        Vec<A, V> a = load<V>(pr + c);
        for (int k = 1; k < K; ++k) a = combine<R>(load<V>(pr + c + k * L), a);
        store<V>(out + c, a);
    }
}

// Wider W windows: doubling spans in t1 and t2 up to a span s (a power of two), then
// J <= 8 taps s apart (the last one at K - s, overlapping: a max/min may count a cell
// twice). Segment by segment (kSegment values): the spans' rows stay in L1
// however long the row.
constexpr i64 kSegment = 512;

template <class R, class A, i64 V>
inline void span_taps(const A *__restrict cur, i64 s, i64 last, i64 n, i64 J, A *__restrict out) {
    for (i64 c = 0; c < n; c += V) {
        Vec<A, V> a = load<V>(cur + c);
        for (i64 j = 1; j + 1 < J; ++j) a = combine<R>(load<V>(cur + c + j * s), a);
        store<V>(out + c, combine<R>(load<V>(cur + c + last), a));
    }
}

// J fixed, so the taps unroll (one function per J, type and level: pip install's compile
// time, spent only where it pays, see kUnrolledFor).
template <class R, class A, i64 V, int J>
void row_span_taps(const A *__restrict cur, i64 s, i64 last, i64 n, A *__restrict out) {
    span_taps<R, A, V>(cur, s, last, n, J, out);
}

// Whether the kernel sizes are compile-time constants (unrolled) for this accumulator.
template <class A>
constexpr bool kUnrolled = std::is_floating_point<A>::value;

// ... and for the passes of reduction Q: the NaN-free ones only. The NaN-aware passes
// run only on a band whose copy met a NaN, and each unrolled size is a function per
// type, reduction and level (pip install's compile time).
template <class Q>
struct IsNanFree : std::false_type {};
template <class R>
struct IsNanFree<NanFree<R>> : std::true_type {};
template <class Q, class A>
constexpr bool kUnrolledFor = kUnrolled<A> && IsNanFree<Q>::value;

template <class R, class A, i64 V, i64 L>
struct RowSpans {
    using Taps = void (*)(const A *, i64, i64, i64, A *);
    i64 kW = 0, s = 1;
    Taps taps = nullptr;

    template <int J>
    static Taps taps_for(i64 j) {
        if constexpr (J > 2)
            if (j < J) return taps_for<J - 1>(j);
        return row_span_taps<R, A, V, J>;
    }
    explicit RowSpans(i64 k) : kW(k) {
        while ((kW + s - 1) / s > 8) s *= 2;
        if constexpr (kUnrolledFor<R, A>) taps = taps_for<8>((kW + s - 1) / s);
    }
    void operator()(const A *__restrict pr, i64 n, A *__restrict t1, A *__restrict t2, A *__restrict out) const {
        for (i64 c0 = 0; c0 < n; c0 += kSegment) {
            const i64 n_seg = std::min(kSegment, n - c0);
            const A *cur = pr + c0;  // cur[i]: the extreme of pr[c0 + i + j L] over j < span
            A *next = t1;
            for (i64 span = 1; span < s; span *= 2) {
                const i64 m = round_up(n_seg + (kW - 2 * span) * L, V);
                for (i64 c = 0; c < m; c += V) store<V>(next + c, combine<R>(load<V>(cur + c + span * L), load<V>(cur + c)));
                cur = next, next = next == t1 ? t2 : t1;
            }
            if constexpr (kUnrolledFor<R, A>) taps(cur, s * L, (kW - s) * L, n_seg, out + c0);
            else span_taps<R, A, V>(cur, s * L, (kW - s) * L, n_seg, (kW + s - 1) / s, out + c0);
        }
    }
};

// Stores U vectors to one output row: all U * V values, or (a row's or a chunk's end) the first n.
// `stream`: around the caches (simd::stream), y aligned to whole lines.
template <class T, class A, i64 U, i64 V>
inline void put_strip(T *__restrict y, const Vec<A, V> (&v)[U], i64 n, bool stream = false) {
    if (n >= U * V) {
        if constexpr (std::is_same<T, A>::value) {
            if (stream && simd::stream(y, v[0])) {
                for (i64 u = 1; u < U; ++u) simd::stream(y + u * V, v[u]);
                return;
            }
            for (i64 u = 0; u < U; ++u) store<V>(y + u * V, v[u]);
        } else {
            for (i64 u = 0; u < U; ++u)
                for (i64 l = 0; l < V; ++l) y[u * V + l] = static_cast<T>(v[u][l]);
        }
    } else {
        for (i64 l = 0; l < n; ++l) y[l] = static_cast<T>(v[l / V][l % V]);
    }
}

// Runs strip(c, U_tag, n, at) over one row of `cells` cells of L values, c the strip's
// first value in w's row, at its place in y's row, n the values to store. L = 1: strips
// of four vectors, then of one (each width is a copy of every pass: compile time), each
// wholly inside the row, then the last values (fewer than V; the only strip whose
// stores take a loop). L > 1: strips of up to four
// vectors over each cell's `valid` lanes, stored at cell o * lanes of y (lanes past
// `valid` are neither computed nor stored). The strips capture by value: captured
// by reference, every geometry value is reloaded after each store (it might alias),
// four times the instructions.
template <class A, i64 L, class F>
inline void each_strip(i64 cells, i64 lanes, i64 valid, F &&strip) {
    constexpr i64 V = kValues<A, L>;
    if constexpr (L > 1) {
        constexpr i64 U = L / V < 4 ? L / V : 4;
        for (i64 o = 0; o < cells; ++o)
            for (i64 s0 = 0; s0 < valid; s0 += U * V)
                strip(o * L + s0, std::integral_constant<i64, U>{}, std::min(valid - s0, U * V), o * lanes + s0);
    } else {
        (void)lanes, (void)valid;
        const i64 full = cells / V * V;
        i64 c = 0;
        for (; c + 4 * V <= full; c += 4 * V) strip(c, std::integral_constant<i64, 4>{}, 4 * V, c);
        for (; c < full; c += V) strip(c, std::integral_constant<i64, 1>{}, V, c);
        if (full < cells) strip(full, std::integral_constant<i64, 1>{}, cells - full, full);
    }
}

// Where the H passes write: rows `row` apart in y, cells `lanes` apart, `valid` lanes a
// cell; whole strips `stream`ed around the caches (put_strip).
struct Place {
    i64 row, lanes, valid;
    bool stream = false;
};

// One output row of H windows K rows tall (K <= 6), unrolled: y at cell o = the extreme
// of w's rows [0, K) (`wline` apart) at o, over `cells` cells.
template <class R, class T, class A, int K, i64 L>
void column_taps(const A *__restrict w, i64 wline, T *__restrict y, i64 cells, Place at) {
    constexpr i64 V = kValues<A, L>;
    each_strip<A, L>(cells, at.lanes, at.valid, [=](i64 c, auto units, i64 n, i64 yo) {
        constexpr i64 U = decltype(units)::value;
        Vec<A, V> a[U];
        for (i64 u = 0; u < U; ++u) a[u] = load<V>(w + c + u * V);
        for (int t = 1; t < K; ++t)
            for (i64 u = 0; u < U; ++u) a[u] = combine<R>(load<V>(w + t * wline + c + u * V), a[u]);
        put_strip<T, A, U, V>(y + yo, a, n, at.stream);
    });
}

// Taller H windows by van Herk / Gil-Werman blocks of kH rows: the windows that start in
// the block at w's row 0 (at most `count` of them), strip by strip. A strip's suffix
// extremes of the block go to S (kH x U vectors, in L1), the next block's prefix
// extremes are carried in registers, and each window's value is written once; the rows
// written in turn stay kH (a wide image's rows are pages apart).
template <class R, class T, class A, i64 L>
void column_blocks(const A *__restrict w, i64 wline, i64 count, i64 kH, A *__restrict S, T *__restrict y,
                   i64 cells, Place at) {
    constexpr i64 V = kValues<A, L>;
    each_strip<A, L>(cells, at.lanes, at.valid, [=](i64 c, auto units, i64 n, i64 yo) {
        constexpr i64 U = decltype(units)::value;
        const A *col = w + c;
        Vec<A, V> a[U];
        for (i64 u = 0; u < U; ++u) {
            a[u] = load<V>(col + (kH - 1) * wline + u * V);
            store<V>(S + ((kH - 1) * U + u) * V, a[u]);
        }
        for (i64 t = kH - 2; t >= 0; --t)
            for (i64 u = 0; u < U; ++u) {
                a[u] = combine<R>(a[u], load<V>(col + t * wline + u * V));
                store<V>(S + (t * U + u) * V, a[u]);
            }
        put_strip<T, A, U, V>(y + yo, a, n, at.stream);  // the window that is the block
        const A *next = col + kH * wline;  // the next block's rows, in order
        for (i64 u = 0; u < U; ++u) a[u] = load<V>(next + u * V);
        for (i64 t = 1; t < std::min(kH, count); ++t) {
            if (t > 1)
                for (i64 u = 0; u < U; ++u) a[u] = combine<R>(load<V>(next + (t - 1) * wline + u * V), a[u]);
            Vec<A, V> v[U];
            for (i64 u = 0; u < U; ++u) v[u] = combine<R>(a[u], load<V>(S + (t * U + u) * V));
            put_strip<T, A, U, V>(y + t * at.row + yo, v, n, at.stream);
        }
    });
}

// The passes of one band, for one reduction Q (R, or R without the NaN test): for
// float data without the NaN test, the kernel sizes up to 8 taps along W and 6 rows
// along H are compile-time constants.
template <class Q, class T, class A, i64 L>
struct SeparablePasses {
    static constexpr i64 V = kValues<A, L>;
    using Row = void (*)(const A *, i64, A *);
    using Column = void (*)(const A *, i64, T *, i64, Place);
    Row row = nullptr;
    Column column = nullptr;
    RowSpans<Q, A, V, L> spans;

    template <int K>
    static Row row_for(i64 k) {
        if constexpr (K > 1)
            if (k < K) return row_for<K - 1>(k);
        return k == K ? row_taps<Q, A, V, K, L> : nullptr;
    }
    template <int K>
    static Column column_for(i64 k) {
        if constexpr (K > 4)
            if (k < K) return column_for<K - 1>(k);
        return k == K ? column_taps<Q, T, A, K, L> : nullptr;
    }
    // otherwise: the spans (s = 1 up to 8 taps) and van Herk blocks (any height) only
    SeparablePasses(i64 kH, i64 kW) : spans(kW) {
        if constexpr (kUnrolledFor<Q, A>) row = row_for<8>(kW), column = column_for<6>(kH);
        else (void)kH;
    }
};

// Large stride-1 windows of max/min (SPP's 5x5 to 13x13, a scientist's k x k filter of
// one image): separable, W first then H, so that the first extreme in scan order stays
// (as PyTorch's). A cell is L values: L = 1 for channels-first planes; for channels-last
// data a unit is one image's chunk of L lanes (the W pass also runs over the tail
// chunk's missing lanes, on whatever the padded rows hold there; lanes never meet, and
// the H pass neither computes nor stores them). Per band of output rows: each
// input row is copied into a padded row (identity outside the input), one row ahead of
// its W pass, and reduced along W into w, a band of rows (in L1 for SPP's planes, in L2
// for a 2048-wide image); then the H windows run over w in strips and are written to y
// once. Channels-first, w's rows lie oW apart like y's, and windows up to 6 rows tall
// take one flat pass over the band. The passes run NaN-free (one max/min instruction a
// vector); a band whose copy met a NaN is done again with the NaN test.
template <class R, class T, class A, i64 L>
void forward_separable(const T *x, const Geometry &g, const Outputs &out) {
    const Axis &H = g.axis[1], &W = g.axis[2];
    constexpr i64 V = kValues<A, L>;
    static_assert(L == 1 || L % V == 0, "a chunk of lanes is whole vectors");
    const i64 kH = H.kernel, kW = W.kernel, oH = H.n_out, oW = W.n_out;
    const i64 length = oW + kW - 1;
    const i64 top = H.first[0] - H.skip[0], left = W.first[0] - W.skip[0];  // -padding
    const i64 lo = std::clamp<i64>(-left, 0, length), hi = std::clamp<i64>(W.n_in - left, lo, length);
    const A identity = R::template identity<A>();
    const i64 lanes = g.lanes, chunks = (lanes + L - 1) / L, in_plane = g.in_plane(), out_plane = g.out_plane();
    const i64 wline = round_up(oW * L, V), stride = L == 1 ? oW : wline;  // w's row: values, apart
    const i64 plen = round_up((oW + 2 * kW) * L + 2 * V, V), tlen = round_up(kSegment + 2 * kW * L + 2 * V, V);
    // a band's W-reduced rows within 256 KiB where that leaves bands of 2 kH rows or
    // more, or the whole plane where that is at most a quarter more (no rows done twice:
    // channels-last spp's 40 rows in chunks of 128 bytes); bands of one plane alike in height
    const i64 fit0 = (i64(256) << 10) / (wline * static_cast<i64>(sizeof(A))) - (kH - 1);
    const i64 fit = 5 * (fit0 + kH - 1) >= 4 * (oH + kH - 1) ? oH : fit0;
    const i64 most = std::min(oH, std::max<i64>(fit, 2 * kH)), bands = (oH + most - 1) / most;
    const i64 band_h = (oH + bands - 1) / bands;
    const i64 grain = std::max<i64>(1, 16384 / std::max<i64>(band_h * W.n_in * L, 1));
    const SeparablePasses<R, T, A, L> with_nan(kH, kW);
    const SeparablePasses<NanFree<R>, T, A, L> nan_free(kH, kW);
    // channels-last outputs too big for the caches go around them, in whole lines
    const bool stream = L > 1 && std::is_same<T, A>::value && streams(out.y, g.planes * out_plane * sizeof(T)) &&
                        lanes * static_cast<i64>(sizeof(T)) % 64 == 0;
    parallel_for(g.planes * chunks * bands, grain, [&](i64 begin, i64 end) {
        auto &sc = Scratch<A>::get();
        A *w = sized(sc.a, (band_h + kH - 1) * stride + wline + V);
        A *pr = sized(sc.row, 2 * plen + 2 * tlen), *t1 = pr + 2 * plen, *t2 = t1 + tlen;
        A *S = sized(sc.b, kH * 8 * V);
        std::fill(pr, pr + 2 * plen, identity);  // only in-bounds cells' lanes are ever overwritten
        std::fill(t1, t2 + tlen, A(0));
        for (i64 u = begin; u < end; ++u) {
            const i64 b = u % bands, pc = u / bands, p = pc / chunks, l0 = (pc % chunks) * L;
            const i64 n = std::min(L, lanes - l0), oh0 = b * band_h, n_oh = std::min(band_h, oH - oh0);
            const i64 rows = n_oh + kH - 1, h0 = top + oh0;
            const T *plane = x + p * in_plane + l0;
            T *y = static_cast<T *>(out.y) + p * out_plane + oh0 * oW * lanes + l0;
            const Place at{oW * lanes, lanes, n, stream};
            // returns whether a copied value was a NaN (never, for integers)
            auto passes = [&](auto reducer, const auto &k) {
                using Q = decltype(reducer);
                Vec<A, V> seen{};  // lanes that met a NaN hold one
                bool seen_tail = false;
                auto copy = [&](i64 j) {
                    const i64 h = h0 + j;
                    if (j >= rows || h < 0 || h >= H.n_in) return;
                    const T *src = plane + (h * W.n_in + left) * lanes;
                    A *to = pr + (j & 1) * plen;
                    auto vectors = [&](const auto *from, A *into, i64 count) {  // count a multiple of V
                        for (i64 i = 0; i < count; i += V) {
                            const Vec<A, V> v = load<V>(from + i);
                            store<V>(into + i, v);
                            if constexpr (std::numeric_limits<A>::has_quiet_NaN) seen = v != v ? v : seen;
                        }
                    };
                    auto one = [&](A *into, T v) {
                        *into = static_cast<A>(v);
                        if constexpr (std::numeric_limits<A>::has_quiet_NaN) seen_tail = seen_tail || *into != *into;
                    };
                    if constexpr (L == 1) {
                        i64 c = lo;
                        if constexpr (std::is_same<T, A>::value) {
                            vectors(src + c, to + c, (hi - c) / V * V);
                            c += (hi - c) / V * V;
                        }
                        for (; c < hi; ++c) one(to + c, src[c]);
                    } else {
                        if constexpr (std::is_same<T, A>::value) {
                            if (n == L) {  // whole chunks: L / V vectors a cell
                                for (i64 c = lo; c < hi; ++c) vectors(src + c * lanes, to + c * L, L);
                                return;
                            }
                        }
                        for (i64 c = lo; c < hi; ++c)
                            for (i64 l = 0; l < n; ++l) one(to + c * L + l, src[c * lanes + l]);
                    }
                };
                copy(0);
                for (i64 j = 0; j < rows; ++j) {
                    copy(j + 1);
                    A *wr = w + j * stride;  // wline values: channels-first, the last spill into the next row
                    const A *row = pr + (j & 1) * plen;
                    const i64 h = h0 + j;
                    if (h < 0 || h >= H.n_in) std::fill(wr, wr + wline, identity);
                    else if (k.row) k.row(row, wline, wr);
                    else k.spans(row, wline, t1, t2, wr);
                }
                if (L == 1 && k.column) {
                    k.column(w, stride, y, n_oh * oW, at);  // w's rows and y's lie alike: one flat pass
                } else if (k.column) {
                    for (i64 oh = 0; oh < n_oh; ++oh) k.column(w + oh * stride, stride, y + oh * at.row, oW, at);
                } else {
                    for (i64 oh = 0; oh < n_oh; oh += kH)
                        column_blocks<Q, T, A, L>(w + oh * stride, stride, n_oh - oh, kH, S, y + oh * at.row, oW, at);
                }
                bool nan = seen_tail;
                if constexpr (std::numeric_limits<A>::has_quiet_NaN)
                    for (i64 l = 0; l < V; ++l) nan = nan || seen[l] != seen[l];
                return nan;
            };
            // NaN-free first, as the NaN test rides on the copy; a band that held a NaN is
            // done again with it (y's band written over)
            if (passes(NanFree<R>{}, nan_free))
                if constexpr (std::numeric_limits<A>::has_quiet_NaN) passes(R{}, with_nan);
        }
        if (stream) simd::stream_fence();
    });
}

// The running extremes with their winners (what vjp and return_indices need): the
// winner of a window is PyTorch's, the first extreme in scan order (the last NaN), so
// the window's W extent is reduced before its H extent (H first would prefer an
// earlier column over an earlier row). Along W by doubling spans, along H by van Herk /
// Gil-Werman blocks; every step picks between an earlier and a later part of the window
// with R::take(later, earlier), which keeps scan order. Winners are cells of the padded
// plane (int32), then, once W is reduced, (padded row << 16 | tap along W). A padding
// cell can only win a window whose in-bounds cells all hold the identity (-inf for max),
// where PyTorch names the first in-bounds cell instead.
inline bool running_indices_fit(const Geometry &g) {
    const Axis &H = g.axis[1], &W = g.axis[2];
    const i64 rows = H.n_out + H.kernel - 1, length = W.n_out + W.kernel - 1;
    return running_fits(g) && rows * length < (i64(1) << 31) && rows < (1 << 15) && W.kernel < (1 << 16);
}

template <class R, class A>
inline void pick(A later, int32_t later_cell, A earlier, int32_t earlier_cell, A &value, int32_t &cell) {
    const bool t = R::take(later, earlier);
    value = t ? later : earlier;
    cell = t ? later_cell : earlier_cell;
}

template <class R, class T, class A>
void forward_running_indices(const T *x, const Geometry &g, const Outputs &out) {
    const Axis &H = g.axis[1], &W = g.axis[2];
    const i64 kH = H.kernel, kW = W.kernel, oH = H.n_out, oW = W.n_out;
    const i64 length = oW + kW - 1;
    const i64 top = H.first[0] - H.skip[0], left = W.first[0] - W.skip[0];  // -padding
    const A identity = R::template identity<A>();
    const i64 in_plane = g.in_plane(), out_plane = g.out_plane(), n_h = H.n_in, n_w = W.n_in;
    const i64 *w_first = W.first;
    const bool compact = out.kind != IndexKind::flat;
    int64_t *const flat = compact ? nullptr : static_cast<int64_t *>(out.arg);
    const i64 band_h = band_rows(oH, kH, length * static_cast<i64>(sizeof(A) + 4));
    const i64 bands = (oH + band_h - 1) / band_h;
    parallel_for(g.planes * bands, std::max<i64>(1, 16384 / std::max<i64>(band_h * n_w, 1)), [&](i64 begin, i64 end) {
        auto &sc = Scratch<A>::get();
        const i64 cells_max = (band_h + kH - 1) * length, band_max = (band_h + kH - 1) * oW;
        A *va = sized(sc.a, cells_max), *vb = sized(sc.b, cells_max);
        int32_t *ia = sized(sc.wa, cells_max), *ib = sized(sc.wb, cells_max);
        A *pv = sized(sc.row, 2 * band_max), *sv = pv + band_max;  // H prefix and suffix extremes
        int32_t *pi = sized(sc.wc, band_max), *si = sized(sc.wd, band_max);
        A *wv = sized(sc.extra, band_max);  // each row's W-window extremes
        int32_t *wi = sized(sc.we, band_max);
        for (i64 u = begin; u < end; ++u) {
            const i64 p = u / bands, oh0 = (u % bands) * band_h, oH_b = std::min(band_h, oH - oh0);
            const i64 rows = oH_b + kH - 1, cells = rows * length, top_b = top + oh0;  // this band's
            const T *plane = x + p * in_plane;
            padded_plane<A, T>(plane, g, top_b, left, rows, length, identity, va);
            for (i64 c = 0; c < cells; ++c) ia[c] = static_cast<int32_t>(c);
            // along W: cur[c] is the winner of cells [c, c + span) (cells that straddle
            // two rows are computed but never read)
            A *cur = va, *next = vb;
            int32_t *cur_i = ia, *next_i = ib;
            i64 span = 1;
            while (2 * span <= kW) {
                for (i64 c = 0; c + span < cells; ++c)
                    pick<R, A>(cur[c + span], cur_i[c + span], cur[c], cur_i[c], next[c], next_i[c]);
                std::swap(cur, next), std::swap(cur_i, next_i), span *= 2;
            }
            const i64 rest = kW - span;  // two overlapping spans cover the window
            for (i64 j = 0; j < rows; ++j) {
                const A *c = cur + j * length;
                const int32_t *ci = cur_i + j * length;
                A *to = wv + j * oW;
                int32_t *to_i = wi + j * oW;
                const int32_t base = static_cast<int32_t>(j * length), row_code = static_cast<int32_t>(j << 16);
                for (i64 o = 0; o < oW; ++o) {
                    pick<R, A>(c[o + rest], ci[o + rest], c[o], ci[o], to[o], to_i[o]);
                    to_i[o] = (to_i[o] - base - static_cast<int32_t>(o)) | row_code;  // (row, tap)
                }
            }
            // along H: prefix and suffix winners within blocks of kH rows
            for (i64 b0 = 0; b0 < rows; b0 += kH) {
                const i64 b1 = std::min(rows, b0 + kH);
                std::copy(wv + b0 * oW, wv + (b0 + 1) * oW, pv + b0 * oW);
                std::copy(wi + b0 * oW, wi + (b0 + 1) * oW, pi + b0 * oW);
                for (i64 j = b0 + 1; j < b1; ++j)
                    for (i64 o = 0; o < oW; ++o) {
                        const i64 c = j * oW + o;
                        pick<R, A>(wv[c], wi[c], pv[c - oW], pi[c - oW], pv[c], pi[c]);
                    }
                std::copy(wv + (b1 - 1) * oW, wv + b1 * oW, sv + (b1 - 1) * oW);
                std::copy(wi + (b1 - 1) * oW, wi + b1 * oW, si + (b1 - 1) * oW);
                for (i64 j = b1 - 2; j >= b0; --j)
                    for (i64 o = 0; o < oW; ++o) {
                        const i64 c = j * oW + o;
                        pick<R, A>(sv[c + oW], si[c + oW], wv[c], wi[c], sv[c], si[c]);
                    }
            }
            T *y = static_cast<T *>(out.y) + p * out_plane + oh0 * oW;
            for (i64 oh = 0; oh < oH_b; ++oh) {
                const A *later = pv + (oh + kH - 1) * oW, *earlier = sv + oh * oW;
                const int32_t *later_i = pi + (oh + kH - 1) * oW, *earlier_i = si + oh * oW;
                A *value = wv;  // row scratch, free again
                int32_t *code = wi;
                for (i64 ow = 0; ow < oW; ++ow)
                    pick<R, A>(later[ow], later_i[ow], earlier[ow], earlier_i[ow], value[ow], code[ow]);
                for (i64 ow = 0; ow < oW; ++ow) y[oh * oW + ow] = static_cast<T>(value[ow]);
                const i64 first_h = H.first[oh0 + oh] - top_b;  // padded row of the first in-bounds cell
                for (i64 ow = 0; ow < oW; ++ow) {
                    i64 j = code[ow] >> 16, tap = code[ow] & 0xFFFF;
                    const i64 w = left + ow + tap;
                    if (top_b + j < 0 || top_b + j >= n_h || w < 0 || w >= n_w)  // a padding cell
                        j = first_h, tap = w_first[ow] - left - ow;
                    code[ow] = static_cast<int32_t>(compact ? (j - oh) * kW + tap : 0);
                    if (!compact) flat[p * out_plane + (oh0 + oh) * oW + ow] = (top_b + j) * n_w + left + ow + tap;
                }
                const i64 at = p * out_plane + (oh0 + oh) * oW;
                if (out.kind == IndexKind::u8)
                    for (i64 ow = 0; ow < oW; ++ow) static_cast<uint8_t *>(out.arg)[at + ow] = static_cast<uint8_t>(code[ow]);
                else if (out.kind == IndexKind::u16)
                    for (i64 ow = 0; ow < oW; ++ow) static_cast<uint16_t *>(out.arg)[at + ow] = static_cast<uint16_t>(code[ow]);
            }
        }
    });
}

// Large stride-1 averages: window sums from running (prefix) sums, O(1) per cell whatever
// the window. The prefix sums are kept in double, so the difference of two of them loses
// nothing a float32 or float16 result can show; float64 data keeps the direct sums.
template <class T>
void forward_running_sum(const T *x, const Geometry &g, const Outputs &out) {
    const Axis &H = g.axis[1], &W = g.axis[2];
    const i64 kH = H.kernel, kW = W.kernel, oH = H.n_out, oW = W.n_out;
    const i64 length = oW + kW - 1;
    const i64 top = H.first[0] - H.skip[0], left = W.first[0] - W.skip[0];
    const i64 lo = std::clamp<i64>(-left, 0, length), hi = std::clamp<i64>(W.n_in - left, lo, length);
    const i64 in_plane = g.in_plane(), out_plane = g.out_plane();
    const i64 band_h = band_rows(oH, kH, length * static_cast<i64>(sizeof(double)));
    const i64 bands = (oH + band_h - 1) / band_h;
    parallel_for(g.planes * bands, std::max<i64>(1, 16384 / std::max<i64>(band_h * W.n_in, 1)), [&](i64 begin, i64 end) {
        auto &sc = Scratch<double>::get();
        double *column = sized(sc.a, (band_h + kH) * length);  // column[j][b]: the band's rows < j summed
        double *line = sized(sc.b, length + 1);
        for (i64 u = begin; u < end; ++u) {
            const i64 p = u / bands, oh0 = (u % bands) * band_h, oH_b = std::min(band_h, oH - oh0);
            const i64 rows = oH_b + kH - 1;
            const T *plane = x + p * in_plane;
            std::fill(column, column + length, 0.0);
            for (i64 j = 0; j < rows; ++j) {
                const double *above = column + j * length;
                double *next = column + (j + 1) * length;
                const i64 h = top + oh0 + j;
                if (h < 0 || h >= H.n_in) {
                    std::copy(above, above + length, next);
                    continue;
                }
                const T *src = plane + h * W.n_in + left;
                for (i64 c = 0; c < lo; ++c) next[c] = above[c];
                for (i64 c = lo; c < hi; ++c) next[c] = above[c] + static_cast<double>(src[c]);
                for (i64 c = hi; c < length; ++c) next[c] = above[c];
            }
            T *y = static_cast<T *>(out.y) + p * out_plane + oh0 * oW;
            for (i64 oh = 0; oh < oH_b; ++oh) {
                const double *upper = column + oh * length, *lower = column + (oh + kH) * length;
                line[0] = 0.0;
                for (i64 c = 0; c < length; ++c) line[c + 1] = line[c] + (lower[c] - upper[c]);
                const double row_div = out.divisor.row(0, oh0 + oh);
                const double *div = out.divisor.factor[2];
                T *yr = y + oh * oW;
                for (i64 o = 0; o < oW; ++o)
                    yr[o] = static_cast<T>((line[o + kW] - line[o]) / (row_div * div[o]));
            }
        }
    });
}

// The dispatcher: indices need the engine (it tracks winners); otherwise pick a fast path.
template <class R, class T, class A>
void forward_dispatch(const T *x, const Geometry &g, const Outputs &out) {
    const bool indices = R::extreme && out.kind != IndexKind::none;
    if (!indices && whole_planes(g)) return reduce_planes<R, T, A>(x, g, out);
    if constexpr (R::extreme) {
        if (!indices && running_fits(g)) return forward_separable<R, T, A, 1>(x, g, out);
        // channels-last, chunks of 128 bytes of lanes (2 cache lines a pixel). On Zen 3:
        // spp's 13x13 2t 4.8 -> 3.6 ms against the running passes on 64-byte chunks, sppf's
        // 5x5 as fast as the rows path in 58% of its instructions; with the outputs
        // streamed, 128-byte chunks against 256 took spp 3.3 -> 2.7 ms (one band of 40 rows
        // in L2, not two). Below 4x4 and integer data (compile time) keep the rows path,
        // and their winners (return_indices only: no gradient) take the engine
        if constexpr (kUnrolled<A>) {
            if (!indices && running_fits(g, true) && g.axis[1].kernel * g.axis[2].kernel >= 16)
                return forward_separable<R, T, A, 128 / sizeof(A)>(x, g, out);
            if (indices && running_indices_fit(g)) return forward_running_indices<R, T, A>(x, g, out);
        }
    } else if constexpr (!std::is_same<T, double>::value) {
        if (out.divisor && running_fits(g) && g.axis[1].kernel * g.axis[2].kernel >= 64)
            return forward_running_sum<T>(x, g, out);
    }
    if (!indices && sliding(g)) return forward_rows<R, T, A>(x, g, out);
    forward<R, T, A>(x, g, out);
}

}  // namespace ndpool
