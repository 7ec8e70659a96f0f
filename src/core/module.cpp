// Python bindings of the compiled core. Only argument plumbing lives here.
#include <nanobind/nanobind.h>

#include <cstdlib>
#include <stdexcept>
#include <thread>

namespace nb = nanobind;

namespace {

int default_threads() {
    if (const char *env = std::getenv("NDPOOL_NUM_THREADS")) {
        int n = std::atoi(env);
        if (n > 0) return n;
    }
    unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1 : static_cast<int>(hw);
}

int g_threads = default_threads();

}  // namespace

NB_MODULE(_core, m) {
    m.doc() = "ndpool's compiled pooling core";
    m.def("set_num_threads", [](int n) {
        if (n < 1) throw std::invalid_argument("set_num_threads: n must be at least 1");
        g_threads = n;
    }, nb::arg("n"));
    m.def("get_num_threads", []() { return g_threads; });
}
