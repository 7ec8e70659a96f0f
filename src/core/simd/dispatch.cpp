// Chooses and loads the kernel library of one SIMD level (see dispatch.hpp).
#include "dispatch.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#ifndef NDPOOL_LEVELS
#error "NDPOOL_LEVELS lists the levels the build compiled, lowest first (comma-separated)"
#endif

namespace ndpool {

namespace {

// Every level name ndpool knows, in the order it prefers them (lowest first).
const std::vector<std::string> &known_levels() {
    static const std::vector<std::string> names{"baseline", "avx2", "avx512", "neon"};
    return names;
}

bool cpu_has(const std::string &level) {
    if (level == "baseline") return true;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    // the x86-64-v3 / v4 micro-architecture levels: AVX2, FMA, F16C, BMI1/2, LZCNT, MOVBE;
    // AVX-512 F, BW, CD, DQ, VL. The check includes the OS's saving of the registers.
    if (level == "avx2") return __builtin_cpu_supports("x86-64-v3");
    if (level == "avx512") return __builtin_cpu_supports("x86-64-v4");
#elif defined(__aarch64__) && defined(__linux__)
    if (level == "neon") return (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0;
#elif defined(__aarch64__)
    if (level == "neon") return true;  // Advanced SIMD is part of every AArch64 CPU
#endif
    return false;
}

std::vector<std::string> split(const std::string &text) {
    std::vector<std::string> parts;
    size_t begin = 0;
    while (begin <= text.size()) {
        const size_t end = std::min(text.find(',', begin), text.size());
        if (end > begin) parts.push_back(text.substr(begin, end - begin));
        begin = end + 1;
    }
    return parts;
}

std::string joined(const std::vector<std::string> &names) {
    std::string text;
    for (const auto &name : names) text += (text.empty() ? "" : ", ") + name;
    return text;
}

std::string library_folder() {
    Dl_info info;
    if (!dladdr(reinterpret_cast<void *>(&known_levels), &info) || !info.dli_fname)
        throw std::runtime_error("ndpool: cannot find the folder of the compiled core");
    const std::string path = info.dli_fname;
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

const KernelTable &open_level(const std::string &level, const Host &host) {
    const std::string path = library_folder() + "/_kernels/" + level + ".so";
    void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        throw std::runtime_error("ndpool: cannot load the " + level + " kernels (" + path +
                                 "): " + (why ? why : "unknown error") + "; reinstall ndpool");
    }
    auto entry = reinterpret_cast<TableEntry>(dlsym(handle, kTableSymbol));
    const KernelTable *table = entry ? entry(&host) : nullptr;
    if (!table || table->version != kTableVersion)
        throw std::runtime_error("ndpool: " + path + " is not a kernel library of this ndpool; reinstall ndpool");
    return *table;  // the library stays loaded for the life of the process
}

// Every entry of `level` that is set, over `base`.
template <class Fn, size_t N>
void overlay(Fn (&to)[N], const Fn (&from)[N]) {
    for (size_t i = 0; i < N; ++i)
        if (from[i]) to[i] = from[i];
}

template <class Fn, size_t M, size_t N>
void overlay(Fn (&to)[M][N], const Fn (&from)[M][N]) {
    for (size_t i = 0; i < M; ++i) overlay(to[i], from[i]);
}

Dispatch choose(const Host &host) {
    Dispatch d;
    d.built = split(NDPOOL_LEVELS);
    for (const auto &name : known_levels())
        if (cpu_has(name)) d.supported.push_back(name);
    const char *env = std::getenv("NDPOOL_SIMD");
    d.forced = env ? env : "";
    if (!d.forced.empty()) {
        const auto &known = known_levels();
        if (std::find(known.begin(), known.end(), d.forced) == known.end())
            throw std::runtime_error("ndpool: NDPOOL_SIMD='" + d.forced + "' is not a SIMD level; the names are " +
                                     joined(known));
        if (std::find(d.built.begin(), d.built.end(), d.forced) == d.built.end())
            throw std::runtime_error("ndpool: NDPOOL_SIMD='" + d.forced + "' was not built into this ndpool (built: " +
                                     joined(d.built) + ")");
        if (!cpu_has(d.forced))
            throw std::runtime_error("ndpool: NDPOOL_SIMD='" + d.forced + "' needs instructions this CPU lacks (it runs: " +
                                     joined(d.supported) + ")");
        d.level = d.forced;
    } else {
        for (const auto &name : d.built)
            if (cpu_has(name)) d.level = name;  // built lowest first: the last one is the best
    }
    if (d.level.empty()) throw std::runtime_error("ndpool: this CPU runs none of the built levels (" + joined(d.built) + ")");
    d.table = open_level("baseline", host);
    if (d.level != "baseline") {
        const KernelTable &best = open_level(d.level, host);
        overlay(d.table.forward, best.forward);
        overlay(d.table.planes, best.planes);
        overlay(d.table.scatter, best.scatter);
        overlay(d.table.spread, best.spread);
        overlay(d.table.split_ties, best.split_ties);
        overlay(d.table.unpool, best.unpool);
        overlay(d.table.unpool_backward, best.unpool_backward);
        d.table.level = best.level;
    }
    return d;
}

const Dispatch *loaded = nullptr;

}  // namespace

const Dispatch &load_kernels(const Host &host) {
    static const Dispatch dispatch = choose(host);
    loaded = &dispatch;
    return dispatch;
}

const KernelTable &kernels() { return loaded->table; }

}  // namespace ndpool
