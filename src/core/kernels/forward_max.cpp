// The max reductions' forward kernels of one level (a file of their own: the build
// compiles the levels' files in parallel).
#include "entries.hpp"

namespace ndpool {

void fill_max(KernelTable &table) {
    fill_forward<Max>(table, FloatTypes{});
    fill_forward<Max>(table, IntegerTypes{});
}

}  // namespace ndpool
