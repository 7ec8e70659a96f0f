// The sums' (averages') forward kernels of one level; averages are float only.
#include "entries.hpp"

namespace ndpool {

void fill_sum(KernelTable &table) { fill_forward<Sum>(table, FloatTypes{}); }

}  // namespace ndpool
