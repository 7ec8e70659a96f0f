// The hand-written vector kernels, one way per SIMD level, chosen by the flags the
// including library is compiled with (CMakeLists.txt: one library per level). Each
// returns how far it got; the caller's portable loop does the rest, so a level without a
// way here (baseline) simply returns 0. Intrinsics live in this file only.
#pragma once

#include <cstdint>
#include <type_traits>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__ARM_NEON)
#include <arm_neon.h>
#endif

namespace ndpool {
namespace simd {

using i64 = int64_t;

// The SIMD level these kernels are compiled for (what the tests check against).
constexpr const char *level() {
#if defined(__AVX512F__)
    return "avx512";
#elif defined(__AVX2__)
    return "avx2";
#elif defined(__ARM_NEON) && defined(NDPOOL_NEON)
    return "neon";
#else
    return "baseline";
#endif
}

// Whether the level multiplies 32-bit lanes in one instruction (SSE4.1's pmulld, AVX2,
// AVX-512, NEON). SSE2 has only pmuludq: GCC's vectorised 32-bit products there cost
// about 15 instructions a lane (callgrind), so code splits use a table lookup instead.
constexpr bool kMul32 =
#if defined(__SSE4_1__) || defined(__AVX2__) || defined(__AVX512F__) || defined(__ARM_NEON)
    true;
#else
    false;
#endif

// One input row under 2-tap stride-2 windows: row[2j + t] = (a[j] == k0 + t) ? gy[j] : 0
// for windows j of [0, n). GCC does not vectorise the interleaved stores: each way masks
// dy by the two keys and interleaves the halves. Returns the windows done.
template <class T, class I>
inline i64 pairs_row(const T *gy, const I *a, T *row, i64 n, I k0) {
    if constexpr (!std::is_same<T, float>::value || sizeof(I) > 2) {
        return 0;
    } else {
        i64 j = 0;
#if defined(__AVX512F__)
        const __m512i even = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        const __m512i odd = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
        const __m512i key0 = _mm512_set1_epi32(k0), key1 = _mm512_set1_epi32(k0 + 1);
        for (; j < n; j += 16) {  // 16 windows a step, the last ones masked
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
                _mm512_mask_storeu_ps(row + 2 * j, __mmask16((1u << (cells < 16 ? cells : 16)) - 1), lo);
                if (cells > 16) _mm512_mask_storeu_ps(row + 2 * j + 16, __mmask16((1u << (cells - 16)) - 1), hi);
            }
        }
        return n;
#elif defined(__AVX2__)
        const __m256i key0 = _mm256_set1_epi32(k0), key1 = _mm256_set1_epi32(k0 + 1);
        for (; j + 8 <= n; j += 8) {
            const __m256 v = _mm256_loadu_ps(gy + j);
            __m256i k;
            if constexpr (sizeof(I) == 1)
                k = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(a + j)));
            else
                k = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(a + j)));
            const __m256 first = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(k, key0)), v);
            const __m256 second = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(k, key1)), v);
            const __m256 lo = _mm256_unpacklo_ps(first, second);  // windows 0 1 | 4 5
            const __m256 hi = _mm256_unpackhi_ps(first, second);  // windows 2 3 | 6 7
            _mm256_storeu_ps(row + 2 * j, _mm256_permute2f128_ps(lo, hi, 0x20));
            _mm256_storeu_ps(row + 2 * j + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
        }
        return j;
#elif defined(__ARM_NEON) && defined(NDPOOL_NEON)
        // 8 windows a step, so that one whole load takes their codes (8 bytes, or 8
        // halfwords) and reads nothing past a[n); each half of 4 is masked and interleaved.
        const uint32x4_t key0 = vdupq_n_u32(k0), key1 = vdupq_n_u32(static_cast<uint32_t>(k0) + 1);
        for (; j + 8 <= n; j += 8) {
            uint16x8_t codes;
            if constexpr (sizeof(I) == 1) codes = vmovl_u8(vld1_u8(reinterpret_cast<const uint8_t *>(a + j)));
            else codes = vld1q_u16(reinterpret_cast<const uint16_t *>(a + j));
            const uint32x4_t k[2] = {vmovl_u16(vget_low_u16(codes)), vmovl_u16(vget_high_u16(codes))};
            for (int half = 0; half < 2; ++half) {
                const uint32x4_t v = vreinterpretq_u32_f32(vld1q_f32(gy + j + 4 * half));
                float32x4x2_t pair;
                pair.val[0] = vreinterpretq_f32_u32(vandq_u32(vceqq_u32(k[half], key0), v));
                pair.val[1] = vreinterpretq_f32_u32(vandq_u32(vceqq_u32(k[half], key1), v));
                vst2q_f32(row + 2 * (j + 4 * half), pair);  // stores the two halves interleaved
            }
        }
        return j;
#else
        (void)gy, (void)a, (void)row, (void)n, (void)k0;
        return j;
#endif
    }
}

// Splits m[0, 2n) into even[j] = m[2j] and odd[j] = m[2j + 1] (a stride-2 row's taps, read
// contiguously afterwards). GCC leaves this loop scalar at every level (callgrind: about
// 2.7 instructions a pair at avx2); each way here shuffles whole registers. Returns the
// pairs done.
template <class A>
inline i64 deinterleave(const A *m, A *even, A *odd, i64 n) {
    i64 j = 0;
    if constexpr (std::is_same<A, float>::value) {
#if defined(__AVX512F__)
        const __m512i lo = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
        const __m512i hi = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
        for (; j + 16 <= n; j += 16) {
            const __m512 a = _mm512_loadu_ps(m + 2 * j), b = _mm512_loadu_ps(m + 2 * j + 16);
            _mm512_storeu_ps(even + j, _mm512_permutex2var_ps(a, lo, b));
            _mm512_storeu_ps(odd + j, _mm512_permutex2var_ps(a, hi, b));
        }
#elif defined(__AVX2__)
        for (; j + 8 <= n; j += 8) {  // in-lane shuffles give 0 2 8 10 | 4 6 12 14; the 64-bit permute orders them
            const __m256 a = _mm256_loadu_ps(m + 2 * j), b = _mm256_loadu_ps(m + 2 * j + 8);
            const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
            const __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
            _mm256_storeu_ps(even + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8)));
            _mm256_storeu_ps(odd + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xD8)));
        }
#elif defined(__ARM_NEON) && defined(NDPOOL_NEON)
        for (; j + 4 <= n; j += 4) {
            const float32x4x2_t v = vld2q_f32(m + 2 * j);  // loads the pairs split
            vst1q_f32(even + j, v.val[0]);
            vst1q_f32(odd + j, v.val[1]);
        }
#elif defined(__SSE2__)
        for (; j + 4 <= n; j += 4) {
            const __m128 a = _mm_loadu_ps(m + 2 * j), b = _mm_loadu_ps(m + 2 * j + 4);
            _mm_storeu_ps(even + j, _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
            _mm_storeu_ps(odd + j, _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
        }
#endif
    }
    (void)m, (void)even, (void)odd, (void)n;
    return j;
}

// The max backward's targets at the baseline level, from 8-bit codes of a 2-D kernel:
// to[j] = origin[j] + kh * step_h + kw * step_w + shift, where kh = (code * by) >> 16 and
// kw = code - kh * w (CodeSplit::narrow in backward.hpp, which checks the split exact).
// SSE2 multiplies 16-bit lanes natively; GCC's own vectorisation of the same arithmetic
// took about 7 instructions a target (callgrind). The levels with 32-bit lane products
// split by CodeSplit::arith instead and return 0 here. Returns the targets done.
inline i64 narrow_targets(const uint8_t *a, const int32_t *origin, int32_t shift, int32_t *to, i64 n, uint16_t by,
                          int16_t w, int16_t step_h, int16_t step_w) {
    i64 j = 0;
#if defined(__SSE2__) && !defined(__AVX2__) && !defined(__AVX512F__)
    const __m128i zero = _mm_setzero_si128(), byv = _mm_set1_epi16(static_cast<short>(by)), wv = _mm_set1_epi16(w);
    const __m128i steps = _mm_set1_epi32(static_cast<int>((static_cast<uint32_t>(static_cast<uint16_t>(step_w)) << 16) |
                                                          static_cast<uint16_t>(step_h)));  // (step_h, step_w) pairs
    const __m128i add = _mm_set1_epi32(shift);
    for (; j + 8 <= n; j += 8) {
        const __m128i c = _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(a + j)), zero);
        const __m128i kh = _mm_mulhi_epu16(c, byv);
        const __m128i kw = _mm_sub_epi16(c, _mm_mullo_epi16(kh, wv));
        const __m128i lo = _mm_madd_epi16(_mm_unpacklo_epi16(kh, kw), steps);  // kh * step_h + kw * step_w
        const __m128i hi = _mm_madd_epi16(_mm_unpackhi_epi16(kh, kw), steps);
        const __m128i o0 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(origin + j));
        const __m128i o1 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(origin + j + 4));
        _mm_storeu_si128(reinterpret_cast<__m128i *>(to + j), _mm_add_epi32(_mm_add_epi32(lo, o0), add));
        _mm_storeu_si128(reinterpret_cast<__m128i *>(to + j + 4), _mm_add_epi32(_mm_add_epi32(hi, o1), add));
    }
#endif
    (void)a, (void)origin, (void)shift, (void)to, (void)n, (void)by, (void)w, (void)step_h, (void)step_w;
    return j;
}

// A non-temporal store of one register's worth of values (V, a vector type of the
// level's width) at p, aligned to that width: it bypasses the caches, so an output
// too big to stay in them is written without first reading every line it fills. Whole
// lines only (a partial one is slow). Returns false where the level has no such store
// (NEON: the caller stores as usual). The stores are weakly ordered: stream_fence()
// before the work unit's results are handed on.
template <class V>
inline bool stream(void *p, const V &v) {
#if defined(__AVX512F__)
    if constexpr (sizeof(V) == 64) {
        _mm512_stream_si512(static_cast<__m512i *>(p), reinterpret_cast<const __m512i &>(v));
        return true;
    }
#elif defined(__AVX2__)
    if constexpr (sizeof(V) == 32) {
        _mm256_stream_si256(static_cast<__m256i *>(p), reinterpret_cast<const __m256i &>(v));
        return true;
    }
#elif defined(__SSE2__)
    if constexpr (sizeof(V) == 16) {
        _mm_stream_si128(static_cast<__m128i *>(p), reinterpret_cast<const __m128i &>(v));
        return true;
    }
#endif
    (void)p, (void)v;
    return false;
}

// to[0, n) = from[0, n), the whole lines of `to` stored around the caches (stream()),
// the rest as usual; the caller fences.
template <class T>
inline void stream_copy(const T *from, T *to, i64 n) {
    i64 i = 0;
    for (; i < n && reinterpret_cast<uintptr_t>(to + i) % 64 != 0; ++i) to[i] = from[i];
#if defined(__AVX512F__) || defined(__AVX2__) || defined(__SSE2__)
    constexpr i64 line = 64 / static_cast<i64>(sizeof(T));
    for (; i + line <= n; i += line) {
        const char *f = reinterpret_cast<const char *>(from + i);
        char *t = reinterpret_cast<char *>(to + i);
#if defined(__AVX512F__)
        _mm512_stream_si512(reinterpret_cast<__m512i *>(t), _mm512_loadu_si512(f));
#elif defined(__AVX2__)
        for (int h = 0; h < 64; h += 32)
            _mm256_stream_si256(reinterpret_cast<__m256i *>(t + h),
                                _mm256_loadu_si256(reinterpret_cast<const __m256i *>(f + h)));
#else
        for (int h = 0; h < 64; h += 16)
            _mm_stream_si128(reinterpret_cast<__m128i *>(t + h), _mm_loadu_si128(reinterpret_cast<const __m128i *>(f + h)));
#endif
    }
#endif
    for (; i < n; ++i) to[i] = from[i];
}

inline void stream_fence() {
#if defined(__SSE2__) || defined(__AVX2__) || defined(__AVX512F__)
    _mm_sfence();
#endif
}

}  // namespace simd
}  // namespace ndpool
