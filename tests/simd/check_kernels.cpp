// Checks every vector way of simd/kernels.hpp, followed by the caller's portable loop,
// against a plain scalar reference, bit for bit (so -0.0 and NaN payloads count), on
// random sizes, codes and unaligned pointers. scripts/check_simd.sh builds it once per
// SIMD level (natively for x86, under qemu for AArch64); see docs/simd.md.
//
//   check_kernels [seed]     exit status 0 when every check passed
#include "simd/kernels.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

using ndpool::simd::i64;

const std::string level = ndpool::simd::level();
const bool baseline = level == "baseline";

// ---- tallies and messages

long passed = 0, failed = 0;
char current[256] = "start";  // the case under way, for the SIGSEGV message

void check(bool ok, const std::string &what) {
    if (ok) {
        ++passed;
        return;
    }
    if (++failed <= 20) std::printf("FAIL %s: %s\n", current, what.c_str());
}

void on_segv(int) {
    const char *head = "FAIL ";
    const char *tail = ": touched memory outside its arrays (SIGSEGV at a guard page)\n";
    (void)!write(2, head, std::strlen(head));
    (void)!write(2, current, std::strlen(current));
    (void)!write(2, tail, std::strlen(tail));
    _exit(3);
}

uint32_t bits(float v) {
    uint32_t b;
    std::memcpy(&b, &v, 4);
    return b;
}

float from_bits(uint32_t b) {
    float v;
    std::memcpy(&v, &b, 4);
    return v;
}

// Whether two arrays hold the same bit patterns (memcmp, which a null empty array must not reach).
bool same_bits(const float *x, const float *y, size_t count) { return count == 0 || std::memcmp(x, y, count * 4) == 0; }

std::string hex(uint32_t b) {
    char text[16];
    std::snprintf(text, sizeof text, "0x%08x", static_cast<unsigned>(b));
    return text;
}

// ---- memory: each array ends where an unreadable page begins, or sits at a random
// misalignment with a filled margin around it, so reads past the end stop the program
// and stray writes show in the margin.

constexpr unsigned char kFill = 0xA5;  // 0xa5a5a5a5, about -2.9e-16: no input holds it
constexpr size_t kMargin = 256;

class Region {
public:
    explicit Region(size_t capacity) {
        const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
        size_ = (capacity + 2 * kMargin + page - 1) / page * page;
        mapped_ = size_ + page;
        void *p = mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED || mprotect(static_cast<char *>(p) + size_, page, PROT_NONE) != 0) {
            std::perror("check_kernels: mmap");
            std::exit(2);
        }
        base_ = static_cast<unsigned char *>(p);
    }
    Region(const Region &) = delete;
    Region &operator=(const Region &) = delete;
    ~Region() { munmap(base_, mapped_); }

    // Room for `count` elements of T, against the guard page or `skew` elements past a
    // 64-byte boundary; the region around it is filled with kFill.
    template <class T>
    T *place(i64 count, bool at_guard, int skew) {
        std::memset(base_, kFill, size_);
        const size_t bytes = static_cast<size_t>(count) * sizeof(T);
        begin_ = at_guard ? size_ - bytes : kMargin + static_cast<size_t>(skew) * sizeof(T);
        end_ = begin_ + bytes;
        return reinterpret_cast<T *>(base_ + begin_);
    }

    // Whether every byte within kMargin of the placed array, outside it, still holds kFill.
    bool margin_intact() const {
        const size_t lo = begin_ < kMargin ? 0 : begin_ - kMargin, hi = std::min(end_ + kMargin, size_);
        for (size_t at = lo; at < hi; ++at)
            if ((at < begin_ || at >= end_) && base_[at] != kFill) return false;
        return true;
    }

private:
    unsigned char *base_ = nullptr;
    size_t size_ = 0, mapped_ = 0, begin_ = 0, end_ = 0;  // begin_, end_: byte offsets of the array
};

// ---- random inputs

std::mt19937_64 rng;

i64 uniform(i64 lo, i64 hi) { return std::uniform_int_distribution<i64>(lo, hi)(rng); }

uint32_t sign() { return uniform(0, 1) ? 0x80000000u : 0u; }

// Values with the bit patterns that a careless select or blend would change: both zeros,
// infinities, subnormals, quiet and signalling NaNs with payloads and either sign.
float tricky_float() {
    switch (uniform(0, 9)) {
    case 0: return from_bits(0x80000000u);                                          // -0.0
    case 1: return from_bits(0x00000000u);                                          // +0.0
    case 2: return from_bits(0x7fc00000u | static_cast<uint32_t>(uniform(0, 0x3fffff)) | sign());  // quiet NaN
    case 3: return from_bits(0x7f800001u + static_cast<uint32_t>(uniform(0, 0x3ffffe)));  // signalling NaN
    case 4: return from_bits(uniform(0, 1) ? 0x7f800000u : 0xff800000u);              // +-inf
    case 5: return from_bits(static_cast<uint32_t>(uniform(1, 0x7fffff)) | sign());  // subnormal
    default: return std::uniform_real_distribution<float>(-100.0f, 100.0f)(rng);
    }
}

// A code near the keys: one of them, its neighbours, or one that differs from a key in
// the high byte only (a way that compared 8 bits of a 16-bit code would take it).
template <class I>
I code_near(I k0) {
    constexpr i64 top = std::numeric_limits<I>::max();
    switch (uniform(0, 9)) {
    case 0: case 1: case 2: return k0;
    case 3: case 4: case 5: return static_cast<I>(k0 + 1);
    case 6: return static_cast<I>(k0 + 2);
    case 7: return static_cast<I>(k0 - 1);
    case 8: return sizeof(I) > 1 ? static_cast<I>(k0 ^ 0x100) : static_cast<I>(uniform(0, top));
    default: return static_cast<I>(uniform(0, top));
    }
}

// k0 + 1 must be a code of I: the callers pass the first tap of a 2-tap window, which
// is even and below the tap count.
template <class I>
I random_k0() {
    constexpr i64 top = std::numeric_limits<I>::max();
    switch (uniform(0, 3)) {
    case 0: return 0;
    case 1: return static_cast<I>(top - 1);
    case 2: return static_cast<I>(2 * uniform(0, 16));
    default: return static_cast<I>(uniform(0, top - 1));
    }
}

template <class I> const char *code_name();
template <> const char *code_name<uint8_t>() { return "uint8_t"; }
template <> const char *code_name<uint16_t>() { return "uint16_t"; }

// ---- pairs_row

// What the row must hold, written from the rule itself, on bit patterns.
template <class I>
void pairs_reference(const float *gy, const I *a, float *row, i64 n, I k0) {
    const I k1 = static_cast<I>(k0 + 1);
    for (i64 j = 0; j < n; ++j) {
        const uint32_t v = bits(gy[j]);
        const uint32_t first = a[j] == k0 ? v : 0u, second = a[j] == k1 ? v : 0u;
        std::memcpy(row + 2 * j, &first, 4);
        std::memcpy(row + 2 * j + 1, &second, 4);
    }
}

// The portable loop of pairs_row in src/core/backward.hpp, which finishes the row.
template <class I>
void pairs_tail(const float *gy, const I *a, float *row, i64 j, i64 n, I k0) {
    const I k1 = static_cast<I>(k0 + 1);
    for (; j < n; ++j) {
        const float v = gy[j];
        const I aj = a[j];
        row[2 * j] = aj == k0 ? v : 0.0f;
        row[2 * j + 1] = aj == k1 ? v : 0.0f;
    }
}

// What is wrong with the row: a write outside it, or its first cell that differs.
template <class I>
std::string row_problem(const Region &mem, const float *row, const std::vector<float> &want, const float *gy,
                        const I *a) {
    if (!mem.margin_intact()) return "wrote outside the row";
    for (size_t c = 0; c < want.size(); ++c)
        if (bits(row[c]) != bits(want[c]))
            return "row[" + std::to_string(c) + "] = " + hex(bits(row[c])) + ", reference " + hex(bits(want[c])) +
                   " (a[" + std::to_string(c / 2) + "] = " + std::to_string(a[c / 2]) +
                   ", gy = " + hex(bits(gy[c / 2])) + ")";
    return "no difference";
}

template <class I>
void check_pairs_row(int trials) {
    Region gy_mem(512 * sizeof(float)), a_mem(512 * sizeof(I)), row_mem(1024 * sizeof(float));
    std::vector<float> want;
    for (i64 n = 0; n <= 100; ++n)
        for (int trial = 0; trial < trials; ++trial) {
            const bool at_guard = trial % 2 == 0;
            const I k0 = random_k0<I>();
            std::snprintf(current, sizeof current, "pairs_row<float, %s> n=%lld k0=%u trial %d (%s)", code_name<I>(),
                          static_cast<long long>(n), static_cast<unsigned>(k0), trial,
                          at_guard ? "inputs at a guard page" : "skewed");
            float *gy = gy_mem.place<float>(n, at_guard, static_cast<int>(uniform(0, 15)));
            I *a = a_mem.place<I>(n, at_guard, static_cast<int>(uniform(0, 63)));
            float *row = row_mem.place<float>(2 * n, false, static_cast<int>(uniform(0, 15)));
            for (i64 j = 0; j < n; ++j) gy[j] = tricky_float(), a[j] = code_near<I>(k0);
            want.assign(static_cast<size_t>(2 * n), from_bits(0xa5a5a5a5u));

            const i64 done = ndpool::simd::pairs_row<float, I>(gy, a, row, n, k0);
            check(done >= 0 && done <= n, "returned " + std::to_string(done) + ", outside [0, n]");
            if (done < 0 || done > n) continue;
            if (baseline) check(done == 0, "the baseline has no vector way, yet it returned " + std::to_string(done));
            else check(n - done < 16, "a vector way left " + std::to_string(n - done) + " windows (16 or more)");
            // what the vector way claims, and nothing past it
            pairs_reference<I>(gy, a, want.data(), done, k0);
            check(same_bits(row, want.data(), want.size()) && row_mem.margin_intact(),
                  "after the vector way alone (" + std::to_string(done) + " windows): " +
                      row_problem<I>(row_mem, row, want, gy, a));
            pairs_tail<I>(gy, a, row, done, n, k0);
            pairs_reference<I>(gy, a, want.data(), n, k0);
            check(same_bits(row, want.data(), want.size()) && row_mem.margin_intact(),
                  "after the portable loop (the vector way did " + std::to_string(done) + "): " +
                      row_problem<I>(row_mem, row, want, gy, a));
        }
}

// Types without a vector way return 0 and leave the row alone, at every level.
void check_pairs_row_other_types() {
    std::snprintf(current, sizeof current, "pairs_row for double and uint32_t codes");
    const i64 n = 40;
    std::vector<double> gyd(n, 1.0), rowd(2 * n, -7.0);
    std::vector<float> gyf(n, 1.0f), rowf(2 * n, -7.0f);
    std::vector<uint8_t> a8(n, 0);
    std::vector<uint32_t> a32(n, 0);
    check(ndpool::simd::pairs_row<double, uint8_t>(gyd.data(), a8.data(), rowd.data(), n, 0) == 0 &&
              rowd == std::vector<double>(2 * n, -7.0),
          "pairs_row<double, uint8_t> must do nothing and return 0");
    check(ndpool::simd::pairs_row<float, uint32_t>(gyf.data(), a32.data(), rowf.data(), n, 0u) == 0 &&
              rowf == std::vector<float>(2 * n, -7.0f),
          "pairs_row<float, uint32_t> must do nothing and return 0");
}

}  // namespace

// ---- stream_copy: every value copied bit for bit, at any misalignment and length (the
// whole lines streamed, the head and tail stored as usual), nothing written outside.
template <class T>
void check_stream_copy(int trials) {
    Region from_mem(4096 * sizeof(T)), to_mem(4096 * sizeof(T));
    for (int t = 0; t < trials; ++t)
        for (i64 n : {i64(0), i64(1), i64(15), i64(16), i64(17), i64(63), i64(64), i64(200), uniform(1, 4000)}) {
            const bool at_guard = uniform(0, 1) == 1;
            const int skew = static_cast<int>(uniform(0, 63 / static_cast<int>(sizeof(T))));
            T *from = from_mem.place<T>(n, at_guard, static_cast<int>(uniform(0, 15)));
            T *to = to_mem.place<T>(n, !at_guard, skew);
            for (i64 i = 0; i < n; ++i) {
                const float f = tricky_float();
                std::memcpy(from + i, &f, std::min(sizeof(T), sizeof(float)));
                if (sizeof(T) > sizeof(float)) std::memcpy(reinterpret_cast<char *>(from + i) + 4, &f, sizeof(T) - 4);
            }
            ndpool::simd::stream_copy(from, to, n);
            ndpool::simd::stream_fence();
            check((n == 0 || std::memcmp(from, to, static_cast<size_t>(n) * sizeof(T)) == 0) && to_mem.margin_intact(),
                  std::string("stream_copy of ") + std::to_string(n) + " values of " + std::to_string(sizeof(T)) +
                      " bytes at skew " + std::to_string(skew) + (at_guard ? "" : ", against the guard page"));
        }
}

// ---- deinterleave: even[j] = m[2j], odd[j] = m[2j + 1] bit for bit over the pairs it
// reports done (all but fewer than one register's, at every level but AArch64's baseline:
// x86-64's has SSE2), nothing read past m[2n) or written beyond the pairs done.
void check_deinterleave(int trials) {
#if defined(__SSE2__)
    const bool has_way = true;
#else
    const bool has_way = !baseline;
#endif
    Region m_mem(8192 * 4), even_mem(4096 * 4), odd_mem(4096 * 4);
    for (int t = 0; t < trials; ++t)
        for (i64 n : {i64(0), i64(1), i64(3), i64(4), i64(7), i64(8), i64(15), i64(16), i64(17), i64(56),
                      uniform(1, 4000)}) {
            std::snprintf(current, sizeof current, "deinterleave n=%lld trial %d", static_cast<long long>(n), t);
            const bool at_guard = uniform(0, 1) == 1;
            float *m = m_mem.place<float>(2 * n, at_guard, static_cast<int>(uniform(0, 15)));
            float *even = even_mem.place<float>(n, !at_guard, static_cast<int>(uniform(0, 15)));
            float *odd = odd_mem.place<float>(n, at_guard, static_cast<int>(uniform(0, 15)));
            for (i64 i = 0; i < 2 * n; ++i) m[i] = tricky_float();
            const i64 done = ndpool::simd::deinterleave(m, even, odd, n);
            check(done >= 0 && done <= n, "returned " + std::to_string(done) + ", outside [0, n]");
            if (done < 0 || done > n) continue;
            if (has_way) check(n - done < 16, "left " + std::to_string(n - done) + " pairs (16 or more)");
            else check(done == 0, "this level has no way, yet it returned " + std::to_string(done));
            std::vector<float> want_even(static_cast<size_t>(done)), want_odd(static_cast<size_t>(done));
            for (i64 j = 0; j < done; ++j) want_even[j] = m[2 * j], want_odd[j] = m[2 * j + 1];
            check(same_bits(even, want_even.data(), want_even.size()) && same_bits(odd, want_odd.data(), want_odd.size()),
                  "a value differs from m[2j] / m[2j + 1]");
            // the pairs not done stay untouched (the caller writes them)
            bool untouched = true;
            for (i64 j = done; j < n; ++j) untouched = untouched && bits(even[j]) == 0xa5a5a5a5u && bits(odd[j]) == 0xa5a5a5a5u;
            check(untouched && even_mem.margin_intact() && odd_mem.margin_intact(), "wrote past the pairs it did");
        }
    std::snprintf(current, sizeof current, "deinterleave<double>");
    std::vector<double> md(8, 1.0), ed(4), od(4);
    check(ndpool::simd::deinterleave(md.data(), ed.data(), od.data(), 4) == 0, "deinterleave<double> must return 0");
}

// ---- narrow_targets: to[j] = origin[j] + kh * step_h + kw * step_w + shift for 8-bit
// codes of 2-D kernels (kh = (code * by) >> 16, kw = code - kh * w, by = 2^16 / w rounded
// up), over the targets it reports done; only x86-64's baseline has a way (the other
// levels multiply 32-bit lanes and split codes otherwise), and the rest return 0.
void check_narrow_targets(int trials) {
#if defined(__SSE2__) && !defined(__AVX2__)
    const bool has_way = true;
#else
    const bool has_way = false;
#endif
    Region a_mem(4096), origin_mem(4096 * 4), to_mem(4096 * 4);
    for (int t = 0; t < trials; ++t)
        for (i64 n : {i64(0), i64(1), i64(7), i64(8), i64(9), i64(16), i64(40), uniform(1, 4000)}) {
            const int16_t w = static_cast<int16_t>(uniform(2, 16)), kh_max = static_cast<int16_t>(uniform(1, 255 / w));
            const uint16_t by = static_cast<uint16_t>((65536 + w - 1) / w);
            const int16_t step_h = static_cast<int16_t>(uniform(1, 32767)), step_w = static_cast<int16_t>(uniform(1, 3));
            const int32_t shift = static_cast<int32_t>(uniform(0, 1 << 20));
            std::snprintf(current, sizeof current, "narrow_targets n=%lld w=%d step_h=%d trial %d",
                          static_cast<long long>(n), w, step_h, t);
            const bool at_guard = uniform(0, 1) == 1;
            uint8_t *a = a_mem.place<uint8_t>(n, at_guard, static_cast<int>(uniform(0, 15)));
            int32_t *origin = origin_mem.place<int32_t>(n, !at_guard, static_cast<int>(uniform(0, 15)));
            int32_t *to = to_mem.place<int32_t>(n, at_guard, static_cast<int>(uniform(0, 15)));
            for (i64 i = 0; i < n; ++i) {
                a[i] = static_cast<uint8_t>(uniform(0, kh_max * w - 1));
                origin[i] = static_cast<int32_t>(uniform(0, 1 << 24));
            }
            const i64 done = ndpool::simd::narrow_targets(a, origin, shift, to, n, by, w, step_h, step_w);
            check(done >= 0 && done <= n, "returned " + std::to_string(done) + ", outside [0, n]");
            if (done < 0 || done > n) continue;
            if (has_way) check(n - done < 8, "left " + std::to_string(n - done) + " targets (8 or more)");
            else check(done == 0, "this level has no way, yet it returned " + std::to_string(done));
            bool same = true;
            for (i64 j = 0; j < done; ++j) {
                const int32_t kh = a[j] / w, kw = a[j] % w;
                same = same && to[j] == origin[j] + kh * step_h + kw * step_w + shift;
            }
            check(same, "a target differs from origin + kh * step_h + kw * step_w + shift");
            check(to_mem.margin_intact(), "wrote outside the targets");
        }
}

int main(int argc, char **argv) {
    const unsigned long long seed = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 20261201ull;
    rng.seed(seed);
    signal(SIGSEGV, on_segv);
    signal(SIGBUS, on_segv);
    std::printf("check_kernels: level %s, seed %llu\n", level.c_str(), seed);
    check_pairs_row<uint8_t>(12);
    check_pairs_row<uint16_t>(12);
    check_pairs_row_other_types();
    check_stream_copy<float>(6);
    check_stream_copy<double>(6);
    check_deinterleave(8);
    check_narrow_targets(8);
    std::printf("check_kernels [%s]: %ld passed, %ld failed\n", level.c_str(), passed, failed);
    return failed == 0 ? 0 : 1;
}
