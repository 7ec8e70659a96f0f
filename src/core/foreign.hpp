// The core's C interface for foreign runtimes (the JAX FFI extension in jax-ffi/): a call
// is registered once from Python, with everything static about it (op, window tables,
// dtype, divisor, layout), and then run on raw buffers by its handle, with no Python on
// the way. `ndpool._core.foreign_api()` returns a capsule named "ndpool.foreign_api"
// holding a pointer to the table below.
#pragma once

#include <cstdint>

extern "C" {

struct ndpool_foreign_api {
    int32_t version;  // NDPOOL_FOREIGN_API_VERSION of the core that made the table
    // Runs registered call `handle` on the buffers; `count0` is the element count of
    // inputs[0], from which the number of planes follows. Returns nullptr, or an error
    // message owned by the calling thread (valid until its next call).
    const char *(*run)(int64_t handle, const void *const *inputs, int64_t n_inputs,
                       void *const *outputs, int64_t n_outputs, int64_t count0);
};

}

#define NDPOOL_FOREIGN_API_VERSION 1
