// The one SIMD dispatcher: reads the CPU's feature bits once, at import, picks the best
// level that was built and that the CPU runs (or the one NDPOOL_SIMD names), and loads
// that level's kernel library beside the baseline one.
#pragma once

#include <string>
#include <vector>

#include "../table.hpp"

namespace ndpool {

struct Dispatch {
    KernelTable table;                     // the chosen level's kernels, baseline's where it has none
    std::string level;                     // the level in use
    std::vector<std::string> built;        // levels this build has, lowest first
    std::vector<std::string> supported;    // levels of those (and of all known) the CPU runs
    std::string forced;                    // NDPOOL_SIMD as set, or empty
};

// Loads the kernels (first call only); throws std::runtime_error naming the problem
// when NDPOOL_SIMD is unknown or names a level this CPU or build lacks.
const Dispatch &load_kernels(const Host &host);

// The loaded kernels (load_kernels must have run).
const KernelTable &kernels();

}  // namespace ndpool
