// The one exported symbol of a kernel library: its table, built on first call, and the
// host's thread pool that its kernels run on.
#include "entries.hpp"

#ifndef NDPOOL_LEVEL
#error "NDPOOL_LEVEL names the SIMD level this library is compiled for"
#endif
#define NDPOOL_STRING2(x) #x
#define NDPOOL_STRING(x) NDPOOL_STRING2(x)

namespace ndpool {

namespace {
Host the_host{};
}

const Host &host() { return the_host; }

}  // namespace ndpool

extern "C" __attribute__((visibility("default"))) const ndpool::KernelTable *ndpool_kernel_table(
    const ndpool::Host *host) {
    using namespace ndpool;
    static const KernelTable table = [] {
        KernelTable t;
        t.level = NDPOOL_STRING(NDPOOL_LEVEL);
        fill_max(t);
        fill_min(t);
        fill_sum(t);
        fill_backward(t);
        return t;
    }();
    if (host) the_host = *host;
    return &table;
}
