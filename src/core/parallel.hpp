// How kernels reach the host's thread pool: through the Host that the loader hands to
// each kernel library (table.hpp), so every level shares one pool and one thread count.
#pragma once

#include <cstdint>
#include <type_traits>

#include "table.hpp"

namespace ndpool {

const Host &host();  // set when the library's table is taken (kernels/table.cpp)

inline int thread_count() { return host().threads(); }

// Runs body(begin, end) over chunks of [0, n) on the host's pool.
template <class F>
void parallel_for(int64_t n, int64_t grain, F &&body) {
    using Body = std::remove_reference_t<F>;
    auto call = [](void *context, int64_t begin, int64_t end) { (*static_cast<Body *>(context))(begin, end); };
    host().parallel_for(n, grain, call, const_cast<void *>(static_cast<const void *>(&body)));
}

}  // namespace ndpool
