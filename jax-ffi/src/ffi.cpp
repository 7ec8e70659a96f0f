// ndpool's one XLA FFI handler: hands the buffers of a call to ndpool's core, which ran
// everything about the call that is static (its window tables, dtype, divisor) when
// ndpool.jax registered it. No Python runs here: the core's C table (foreign.hpp) is
// read once, at import.
#include <nanobind/nanobind.h>
#include <sys/mman.h>

#include <cstdint>

#include <stdexcept>
#include <string>

#include "foreign.hpp"
#include "xla/ffi/api/ffi.h"

namespace nb = nanobind;
namespace ffi = xla::ffi;

namespace {

const ndpool_foreign_api *core = nullptr;
constexpr int64_t max_buffers = 4;

// XLA's CPU runtime takes result buffers from malloc, which serves large ones as fresh
// pages that the kernel writing them must fault in, 4 KiB at a time; asking for
// transparent huge pages on the buffer's whole 2 MiB pages cuts that cost several times
// (where THP is "madvise", the common default). Harmless where the pages already exist.
void prefer_huge_pages(void *data, size_t bytes) {
    constexpr uintptr_t huge = uintptr_t{2} << 20;
    if (bytes < 4 * huge) return;
    const uintptr_t start = reinterpret_cast<uintptr_t>(data);
    const uintptr_t begin = (start + huge - 1) & ~(huge - 1), end = (start + bytes) & ~(huge - 1);
    if (end > begin) madvise(reinterpret_cast<void *>(begin), end - begin, MADV_HUGEPAGE);
}

ffi::Error run(ffi::RemainingArgs args, ffi::RemainingRets rets, int64_t handle) {
    if (core == nullptr) return ffi::Error(ffi::ErrorCode::kFailedPrecondition, "ndpool: the core's table is not loaded");
    const void *inputs[max_buffers];
    void *outputs[max_buffers];
    const int64_t n_in = static_cast<int64_t>(args.size()), n_out = static_cast<int64_t>(rets.size());
    if (n_in < 1 || n_in > max_buffers || n_out < 1 || n_out > max_buffers)
        return ffi::Error::InvalidArgument("ndpool: a call takes 1 to 4 buffers each way");
    int64_t count0 = 0;
    for (int64_t i = 0; i < n_in; ++i) {
        auto buffer = args.get<ffi::AnyBuffer>(static_cast<size_t>(i));
        if (buffer.has_error()) return buffer.error();
        inputs[i] = buffer->untyped_data();
        if (i == 0) count0 = static_cast<int64_t>(buffer->element_count());
    }
    for (int64_t i = 0; i < n_out; ++i) {
        auto buffer = rets.get<ffi::AnyBuffer>(static_cast<size_t>(i));
        if (buffer.has_error()) return buffer.error();
        outputs[i] = (*buffer)->untyped_data();
        prefer_huge_pages(outputs[i], (*buffer)->size_bytes());
    }
    if (const char *error = core->run(handle, inputs, n_in, outputs, n_out, count0))
        return ffi::Error::InvalidArgument(std::string(error));
    return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(ndpool_run, run,
                              ffi::Ffi::Bind().RemainingArgs().RemainingRets().Attr<int64_t>("handle"));

NB_MODULE(_ffi, m) {
    nb::module_ core_module = nb::module_::import_("ndpool._core");
    if (!nb::hasattr(core_module, "foreign_api"))
        throw std::runtime_error("the installed ndpool's core has no C table for foreign runtimes; "
                                 "install ndpool and ./jax-ffi from the same checkout");
    nb::object capsule = core_module.attr("foreign_api")();
    core = static_cast<const ndpool_foreign_api *>(
        PyCapsule_GetPointer(capsule.ptr(), "ndpool.foreign_api"));
    if (core == nullptr) throw nb::python_error();
    if (core->version != NDPOOL_FOREIGN_API_VERSION)
        throw std::runtime_error("ndpool_jax_ffi was built for another version of ndpool's core; "
                                 "reinstall it from the same checkout (pip install ./jax-ffi)");
    m.def("handler", []() { return nb::capsule(reinterpret_cast<void *>(&ndpool_run)); },
          "The XLA FFI handler, for jax.ffi.register_ffi_target.");
}
