// The min reductions' forward kernels of one level (a file of their own: the build
// compiles the levels' files in parallel).
#include "entries.hpp"

namespace ndpool {

void fill_min(KernelTable &table) {
    fill_forward<Min>(table, FloatTypes{});
    fill_forward<Min>(table, IntegerTypes{});
}

}  // namespace ndpool
