// Python bindings of the compiled core: argument plumbing and the one dtype dispatch into
// the kernel table of the SIMD level chosen at import (simd/dispatch.hpp). Outputs come
// from the buffer cache, allocated with the GIL held (by the forward entry points here, by
// the Python adapter for the rest); every kernel runs with it released.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <dlfcn.h>

#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "foreign.hpp"
#include "geometry.hpp"
#include "plan.hpp"
#include "pool.hpp"
#include "simd/dispatch.hpp"
#include "table.hpp"
#include "thread_pool.hpp"

namespace nb = nanobind;
using namespace ndpool;

namespace {

using Array = nb::ndarray<nb::device::cpu, nb::c_contig>;
using Input = nb::ndarray<nb::ro, nb::device::cpu, nb::c_contig>;  // may be read-only
using Table = nb::ndarray<const int64_t, nb::device::cpu, nb::c_contig>;

// axes: three tuples (first, count, skip, step, stride, n_in, kernel), tables (P', out).
Plan make_plan(nb::tuple axes) {
    if (nb::len(axes) != 3) throw std::invalid_argument("core: expected three axes");
    Plan plan;
    plan.keep = axes;
    for (int a = 0; a < 3; ++a) {
        nb::tuple t = nb::cast<nb::tuple>(axes[a]);
        Table first = nb::cast<Table>(t[0]), count = nb::cast<Table>(t[1]), skip = nb::cast<Table>(t[2]);
        if (first.ndim() != 2 || count.ndim() != 2 || skip.ndim() != 2 || count.shape(0) != first.shape(0) ||
            count.shape(1) != first.shape(1) || skip.shape(0) != first.shape(0) || skip.shape(1) != first.shape(1))
            throw std::invalid_argument("core: axis tables must be 2-D and of one shape");
        Axis &ax = plan.axis[a];
        ax.first = first.data(), ax.count = count.data(), ax.skip = skip.data();
        ax.step = nb::cast<i64>(t[3]), ax.stride = nb::cast<i64>(t[4]);
        ax.n_in = nb::cast<i64>(t[5]), ax.kernel = nb::cast<i64>(t[6]);
        ax.n_out = static_cast<i64>(first.shape(1));
        ax.per_plane = first.shape(0) > 1;
        if (ax.per_plane) plan.rows = static_cast<i64>(first.shape(0));
        bool trivial = ax.kernel == 1 && ax.n_in == ax.n_out && !ax.per_plane;
        for (i64 o = 0; trivial && o < ax.n_out; ++o) trivial = ax.first[o] == o && ax.count[o] == 1;
        ax.trivial = trivial;
    }
    return plan;
}

Geometry geometry(const Plan &plan, i64 planes, i64 lanes) {
    Geometry g;
    g.planes = planes, g.lanes = lanes;
    for (int a = 0; a < 3; ++a) g.axis[a] = plan.axis[a];
    return g;
}

using Factor = nb::ndarray<const double, nb::ndim<1>, nb::device::cpu, nb::c_contig>;
using Factors = std::vector<Factor>;

// The divisor's three per-dim factors; `keep` holds the arrays while they are read.
Divisor divisor_of(nb::tuple factors, const Geometry &g, Factors &keep) {
    if (nb::len(factors) != 3) throw std::invalid_argument("core: expected three divisor factors");
    Divisor div;
    for (int a = 0; a < 3; ++a) {
        keep.push_back(nb::cast<Factor>(factors[a]));
        if (static_cast<i64>(keep.back().shape(0)) != g.axis[a].n_out)
            throw std::invalid_argument("core: a divisor factor does not match the output size");
        div.factor[a] = keep.back().data();
    }
    return div;
}

// The kernel table's type slot of an array's element type; integers only where `integers`.
DType dtype_code(const nb::dlpack::dtype &dt, bool integers) {
    using Code = nb::dlpack::dtype_code;
    const auto code = static_cast<Code>(dt.code);
    if (code == Code::Float) {
        switch (dt.bits) {
            case 16: return f16;
            case 32: return f32;
            case 64: return f64;
        }
    } else if (integers && code == Code::Int) {
        switch (dt.bits) {
            case 8: return i8;
            case 16: return i16;
            case 32: return i32;
            case 64: return i64_;
        }
    } else if (integers && code == Code::UInt) {
        switch (dt.bits) {
            case 8: return u8;
            case 16: return u16;
            case 32: return u32;
            case 64: return u64;
        }
    }
    throw nb::type_error("core: unsupported dtype");
}

IndexKind index_kind(const nb::dlpack::dtype &dt) {
    using Code = nb::dlpack::dtype_code;
    const auto code = static_cast<Code>(dt.code);
    if (code == Code::UInt && dt.bits == 8) return IndexKind::u8;
    if (code == Code::UInt && dt.bits == 16) return IndexKind::u16;
    if (code == Code::Int && dt.bits == 64) return IndexKind::flat;
    throw nb::type_error("core: unsupported index dtype");
}

IndexSlot index_slot(const nb::dlpack::dtype &dt) {
    switch (index_kind(dt)) {
        case IndexKind::u8: return slot_u8;
        case IndexKind::u16: return slot_u16;
        default: return slot_flat;
    }
}

void scatter_op(Input dy, Input arg, Array dx, i64 planes, i64 lanes, const Plan &axes) {
    Geometry g = geometry(axes, planes, lanes);
    ScatterFn f = kernels().scatter[dtype_code(dy.dtype(), false)][index_slot(arg.dtype())];
    nb::gil_scoped_release release;
    f(dy.data(), arg.data(), dx.data(), g);
}

void spread_op(Input dy, nb::tuple divisor, Array dx, i64 planes, i64 lanes, const Plan &axes) {
    Geometry g = geometry(axes, planes, lanes);
    Factors factors;
    const Divisor div = divisor_of(divisor, g, factors);
    SpreadFn f = kernels().spread[dtype_code(dy.dtype(), false)];
    nb::gil_scoped_release release;
    f(dy.data(), div, dx.data(), g);
}

void split_ties_op(Input x, Input dy, Array dx, const std::string &kind, i64 planes, i64 lanes,
                   const Plan &axes) {
    Geometry g = geometry(axes, planes, lanes);
    if (x.dtype() != dy.dtype()) throw nb::type_error("core: x and dy dtypes differ");
    SplitTiesFn f = kernels().split_ties[kind == "max" ? 0 : 1][dtype_code(x.dtype(), true)];
    nb::gil_scoped_release release;
    f(x.data(), dy.data(), dx.data(), g);
}

void unpool_op(Input x, nb::ndarray<const int64_t, nb::device::cpu, nb::c_contig> index, Array y,
               i64 planes, i64 n_in, i64 n_out) {
    UnpoolFn f = kernels().unpool[dtype_code(x.dtype(), true)];
    nb::gil_scoped_release release;
    f(x.data(), index.data(), y.data(), planes, n_in, n_out);
}

void unpool_backward_op(Input dy, nb::ndarray<const int64_t, nb::device::cpu, nb::c_contig> index,
                        Array dx, i64 planes, i64 n_in, i64 n_out) {
    UnpoolFn f = kernels().unpool_backward[dtype_code(dy.dtype(), true)];
    nb::gil_scoped_release release;
    f(dy.data(), index.data(), dx.data(), planes, n_in, n_out);
}

Reduction reduction_named(const std::string &kind) {
    if (kind == "max") return max_;
    if (kind == "min") return min_;
    if (kind == "sum" || kind == "mean") return sum_;
    throw std::invalid_argument("core: unknown reduction " + kind);
}

// Outputs are traced in NumPy's tracemalloc domain, so memory profilers see them as
// arrays. The functions are looked up at run time: Python 3.11's tracemalloc.h lacks
// extern "C", so a C++ declaration from it would not link.
constexpr unsigned int numpy_trace_domain = 389047;
using TrackFn = int (*)(unsigned int, uintptr_t, size_t);
using UntrackFn = int (*)(unsigned int, uintptr_t);

void trace_track(void *data, size_t bytes) {
    static const TrackFn track = reinterpret_cast<TrackFn>(dlsym(RTLD_DEFAULT, "PyTraceMalloc_Track"));
    if (track) track(numpy_trace_domain, reinterpret_cast<uintptr_t>(data), bytes);
}

void trace_untrack(void *data) {
    static const UntrackFn untrack = reinterpret_cast<UntrackFn>(dlsym(RTLD_DEFAULT, "PyTraceMalloc_Untrack"));
    if (untrack) untrack(numpy_trace_domain, reinterpret_cast<uintptr_t>(data));
}

// A NumPy array of `shape` and dtype `dt`, whose memory comes from the buffer cache and
// goes back to it when the array (and every view) is freed.
nb::ndarray<nb::numpy> cached_array(const std::vector<size_t> &shape, nb::dlpack::dtype dt) {
    size_t count = 1;
    for (size_t n : shape) count *= n;
    const size_t bytes = count * static_cast<size_t>(dt.bits / 8);
    void *data = BufferCache::instance().take(bytes);
    trace_track(data, bytes);
    struct Block { void *data; size_t bytes; };
    nb::capsule owner(new Block{data, bytes}, [](void *b) noexcept {
        Block *block = static_cast<Block *>(b);
        trace_untrack(block->data);
        BufferCache::instance().give(block->data, block->bytes);
        delete block;
    });
    return nb::ndarray<nb::numpy>(data, shape.size(), shape.data(), owner, nullptr, dt);
}

// An uninitialised array of element kind ('f', 'i', 'u') and size from the buffer cache.
nb::ndarray<nb::numpy> empty(std::vector<size_t> shape, char kind, int itemsize) {
    using Code = nb::dlpack::dtype_code;
    const Code code = kind == 'f' ? Code::Float : kind == 'i' ? Code::Int : Code::UInt;
    return cached_array(shape, nb::dlpack::dtype{static_cast<uint8_t>(code), static_cast<uint8_t>(itemsize * 8), 1});
}

// The whole forward call in one crossing (each Python step costs microseconds once a
// large pass has left the caches cold): allocates y (x's dtype) and, when `winner_bytes`
// is 1, 2 (compact offsets) or 8 (flat int64 indices), the winners; returns (y, winners).
nb::tuple reduce_op(Input x, nb::object divisor, const std::string &kind, bool channels_last,
                    const Plan &plan, int winner_bytes) {
    if (x.ndim() != (channels_last ? 5 : 4)) throw std::invalid_argument("core: x must be canonical");
    const i64 planes = static_cast<i64>(x.shape(0)), lanes = channels_last ? static_cast<i64>(x.shape(4)) : 1;
    std::vector<size_t> shape{x.shape(0)};
    for (int a = 0; a < 3; ++a) shape.push_back(static_cast<size_t>(plan.axis[a].n_out));
    if (channels_last) shape.push_back(x.shape(4));
    nb::ndarray<nb::numpy> y = cached_array(shape, x.dtype());
    Outputs out;
    out.y = y.data();
    nb::object winners = nb::none();
    if (winner_bytes != 0) {
        using Code = nb::dlpack::dtype_code;
        const bool flat = winner_bytes == 8;
        if (!flat && winner_bytes != 1 && winner_bytes != 2) throw std::invalid_argument("core: bad winner size");
        nb::ndarray<nb::numpy> arg = cached_array(
            shape, nb::dlpack::dtype{static_cast<uint8_t>(flat ? Code::Int : Code::UInt),
                                     static_cast<uint8_t>(winner_bytes * 8), 1});
        out.arg = arg.data();
        out.kind = flat ? IndexKind::flat : winner_bytes == 1 ? IndexKind::u8 : IndexKind::u16;
        winners = nb::cast(arg);
    }
    Geometry g = geometry(plan, planes, lanes);
    Factors factors;
    if (!divisor.is_none()) out.divisor = divisor_of(nb::cast<nb::tuple>(divisor), g, factors);
    nb::object result = nb::cast(y);
    const Reduction r = reduction_named(kind);
    if (x.size() != 0) {
        ForwardFn f = kernels().forward[r][dtype_code(x.dtype(), r != sum_)];
        nb::gil_scoped_release release;
        f(x.data(), g, out);
    }
    return nb::make_tuple(result, winners);
}

// A global pool's forward in one crossing: x is (N, C, *spatial) as given, either
// C-contiguous (N*C planes) or a channels-last view of (N, *spatial, C) memory (N images
// of C lanes); the output is (N, C), or (N, C, 1, ...) with keepdims. Any other strides,
// or an empty x, return None: the generic path then copies or rejects.
nb::object global_op(nb::ndarray<nb::ro, nb::device::cpu> x, const std::string &kind, bool keepdims) {
    const size_t nd = x.ndim();
    if (kind != "mean" && kind != "max" && kind != "min") throw std::invalid_argument("core: unknown reduction " + kind);
    if (nd < 3 || x.size() == 0) return nb::none();
    const i64 n = static_cast<i64>(x.shape(0)), c = static_cast<i64>(x.shape(1));
    i64 cells = 1;
    for (size_t d = 2; d < nd; ++d) cells *= static_cast<i64>(x.shape(d));
    auto contiguous = [&](const std::vector<size_t> &order) {  // order: outermost .. innermost
        i64 expect = 1;
        for (size_t k = order.size(); k-- > 0;) {
            const size_t d = order[k];
            if (x.shape(d) != 1 && x.stride(d) != expect) return false;
            expect *= static_cast<i64>(x.shape(d));
        }
        return true;
    };
    std::vector<size_t> order(nd);
    for (size_t d = 0; d < nd; ++d) order[d] = d;
    bool last = false;
    if (!contiguous(order)) {
        order.erase(order.begin() + 1);
        order.push_back(1);
        if (!contiguous(order)) return nb::none();
        last = true;
    }
    const int64_t one = 1, zero = 0, whole = cells;
    const int64_t *one_p = &one, *zero_p = &zero, *whole_p = &whole;
    Geometry g;
    g.planes = last ? n : n * c, g.lanes = last ? c : 1;
    for (int a = 0; a < 2; ++a) {
        Axis &ax = g.axis[a];
        ax.first = zero_p, ax.count = one_p, ax.skip = zero_p, ax.trivial = true;
    }
    Axis &w = g.axis[2];
    w.first = zero_p, w.count = whole_p, w.skip = zero_p, w.n_in = cells, w.kernel = cells;
    std::vector<size_t> shape{x.shape(0), x.shape(1)};
    if (keepdims) shape.resize(nd, 1);
    nb::ndarray<nb::numpy> y = cached_array(shape, x.dtype());
    Outputs out;
    out.y = y.data();
    const double unit = 1.0, size = static_cast<double>(cells);
    const double *unit_p = &unit, *size_p = &size;
    if (kind == "mean") out.divisor.factor[0] = unit_p, out.divisor.factor[1] = unit_p, out.divisor.factor[2] = size_p;
    const Reduction r = reduction_named(kind);
    ForwardFn f = kernels().planes[r][dtype_code(x.dtype(), r != sum_)];
    {
        nb::gil_scoped_release release;
        f(x.data(), g, out);
    }
    return nb::cast(y);
}

// ------------------------------------------------------------ calls for foreign runtimes
// A registered call (foreign.hpp): all that is static about one op on one shape, so that
// a runtime without Python (XLA's FFI) can run it on raw buffers. Calls live as long as
// the process (a program registers one per distinct op and geometry); their Plans keep
// the window tables alive.
enum class CallOp : int { forward, scatter, spread, split_ties, unpool, unpool_backward };

struct Call {
    CallOp op;
    Plan plan;
    DType dtype;
    Reduction reduction = max_;
    bool channels_last = false;
    i64 lanes = 1;
    int winner_bytes = 0;       // forward: 0, 1, 2 or 8; scatter: the winners' size
    int index_bytes = 8;        // unpool: 4 (int32 indices) or 8
    i64 per_plane = 1;          // elements of inputs[0] per plane
    i64 n_in = 0, n_out = 0;    // unpool: cells per plane before and after
    std::vector<double> factors[3];
    Divisor divisor;
};

std::mutex calls_mutex;
std::vector<std::unique_ptr<Call>> *calls = new std::vector<std::unique_ptr<Call>>();  // never freed

CallOp call_op_named(const std::string &op) {
    if (op == "forward") return CallOp::forward;
    if (op == "scatter") return CallOp::scatter;
    if (op == "spread") return CallOp::spread;
    if (op == "split_ties") return CallOp::split_ties;
    if (op == "unpool") return CallOp::unpool;
    if (op == "unpool_backward") return CallOp::unpool_backward;
    throw std::invalid_argument("core: unknown call " + op);
}

DType dtype_of(char kind, int itemsize) {
    const uint8_t code = static_cast<uint8_t>(kind == 'f'   ? nb::dlpack::dtype_code::Float
                                              : kind == 'i' ? nb::dlpack::dtype_code::Int
                                                            : nb::dlpack::dtype_code::UInt);
    return dtype_code(nb::dlpack::dtype{code, static_cast<uint8_t>(itemsize * 8), 1}, true);
}

// Registers a call and returns its handle. `plan` is None for unpooling (sizes n_in,
// n_out instead); `divisor` the mean's three factors or None; `kind` names the
// reduction ("max", "min", "sum") of a forward call or of split ties.
int64_t register_call(const std::string &op, nb::object plan, char dtype_kind, int itemsize,
                      const std::string &kind, bool channels_last, i64 lanes, nb::object divisor,
                      int winner_bytes, int index_bytes, i64 n_in, i64 n_out) {
    auto call = std::make_unique<Call>();
    call->op = call_op_named(op);
    call->dtype = dtype_of(dtype_kind, itemsize);
    call->channels_last = channels_last;
    call->lanes = channels_last ? lanes : 1;
    call->winner_bytes = winner_bytes;
    call->index_bytes = index_bytes;
    call->n_in = n_in, call->n_out = n_out;
    if (winner_bytes != 0 && winner_bytes != 1 && winner_bytes != 2 && winner_bytes != 8)
        throw std::invalid_argument("core: bad winner size");
    if (index_bytes != 4 && index_bytes != 8) throw std::invalid_argument("core: bad index size");
    if (call->op == CallOp::unpool || call->op == CallOp::unpool_backward) {
        if (n_in < 1 || n_out < 1) throw std::invalid_argument("core: unpool sizes must be positive");
        call->per_plane = call->op == CallOp::unpool ? n_in : n_out;
    } else {
        call->plan = nb::cast<const Plan &>(plan);
        i64 cells_in = 1, cells_out = 1;
        for (const Axis &ax : call->plan.axis) cells_in *= ax.n_in, cells_out *= ax.n_out;
        const bool reads_output = call->op == CallOp::scatter || call->op == CallOp::spread;
        call->per_plane = (reads_output ? cells_out : cells_in) * call->lanes;
        if (call->op == CallOp::forward || call->op == CallOp::split_ties) call->reduction = reduction_named(kind);
        if (!divisor.is_none()) {
            nb::tuple f = nb::cast<nb::tuple>(divisor);
            if (nb::len(f) != 3) throw std::invalid_argument("core: expected three divisor factors");
            for (int a = 0; a < 3; ++a) {
                Factor factor = nb::cast<Factor>(f[a]);
                if (static_cast<i64>(factor.shape(0)) != call->plan.axis[a].n_out)
                    throw std::invalid_argument("core: a divisor factor does not match the output size");
                call->factors[a].assign(factor.data(), factor.data() + factor.shape(0));
                call->divisor.factor[a] = call->factors[a].data();
            }
        }
        if (call->op == CallOp::spread && !call->divisor) throw std::invalid_argument("core: spread needs a divisor");
        const bool sums = call->op == CallOp::spread || call->op == CallOp::scatter ||
                          (call->op == CallOp::forward && call->reduction == sum_);
        if (sums && call->dtype != f16 && call->dtype != f32 && call->dtype != f64)
            throw nb::type_error("core: sums and gradients need a float dtype");
    }
    std::lock_guard<std::mutex> lock(calls_mutex);
    calls->push_back(std::move(call));
    return static_cast<int64_t>(calls->size() - 1);
}

// Indices of an unpool call as int64, checked against the unpooled plane (the caller
// could not check them: under a compiler they are not known until the call runs).
const int64_t *checked_indices(const Call &call, const void *index, i64 count, std::vector<int64_t> &wide) {
    const int64_t *flat = static_cast<const int64_t *>(index);
    if (call.index_bytes == 4) {
        const int32_t *narrow = static_cast<const int32_t *>(index);
        wide.assign(narrow, narrow + count);
        flat = wide.data();
    }
    for (i64 i = 0; i < count; ++i)
        if (flat[i] < 0 || flat[i] >= call.n_out)
            throw std::invalid_argument("max_unpool: indices must lie in [0, " + std::to_string(call.n_out) +
                                        ") for the output plane, found " + std::to_string(flat[i]));
    return flat;
}

void run_call(const Call &call, const void *const *in, int64_t n_in, void *const *out, int64_t n_out,
              int64_t count0) {
    const int64_t want_in = call.op == CallOp::forward || call.op == CallOp::spread ? 1 : 2;
    const int64_t want_out = call.op == CallOp::forward && call.winner_bytes ? 2 : 1;
    if (n_in != want_in || n_out != want_out) throw std::invalid_argument("core: wrong number of buffers for the call");
    if (count0 % call.per_plane != 0) throw std::invalid_argument("core: input size is not a whole number of planes");
    const i64 planes = count0 / call.per_plane;
    if (planes == 0) return;
    if (call.op == CallOp::unpool || call.op == CallOp::unpool_backward) {
        std::vector<int64_t> wide;
        const int64_t *index = checked_indices(call, in[1], planes * call.n_in, wide);
        const KernelTable &k = kernels();
        UnpoolFn f = call.op == CallOp::unpool ? k.unpool[call.dtype] : k.unpool_backward[call.dtype];
        f(in[0], index, out[0], planes, call.n_in, call.n_out);
        return;
    }
    if (call.plan.rows > 1 && call.plan.rows != planes)
        throw std::invalid_argument("core: the window tables are for " + std::to_string(call.plan.rows) +
                                    " planes, the call has " + std::to_string(planes) +
                                    " (fractional pooling with fixed samples cannot be batched)");
    const Geometry g = geometry(call.plan, planes, call.lanes);
    const KernelTable &k = kernels();
    switch (call.op) {
        case CallOp::forward: {
            Outputs o;
            o.y = out[0];
            o.divisor = call.divisor;
            if (call.winner_bytes) {
                o.arg = out[1];
                o.kind = call.winner_bytes == 8 ? IndexKind::flat : call.winner_bytes == 1 ? IndexKind::u8 : IndexKind::u16;
            }
            k.forward[call.reduction][call.dtype](in[0], g, o);
            return;
        }
        case CallOp::scatter: {
            const IndexSlot slot = call.winner_bytes == 8 ? slot_flat : call.winner_bytes == 1 ? slot_u8 : slot_u16;
            k.scatter[call.dtype][slot](in[0], in[1], out[0], g);
            return;
        }
        case CallOp::spread: k.spread[call.dtype](in[0], call.divisor, out[0], g); return;
        case CallOp::split_ties: k.split_ties[call.reduction == max_ ? 0 : 1][call.dtype](in[0], in[1], out[0], g); return;
        default: throw std::logic_error("core: unreachable");
    }
}

const char *foreign_run(int64_t handle, const void *const *inputs, int64_t n_inputs, void *const *outputs,
                        int64_t n_outputs, int64_t count0) {
    thread_local std::string error;
    try {
        const Call *call = nullptr;
        {
            std::lock_guard<std::mutex> lock(calls_mutex);
            if (handle < 0 || handle >= static_cast<int64_t>(calls->size()))
                throw std::invalid_argument("core: unknown call handle " + std::to_string(handle));
            call = (*calls)[static_cast<size_t>(handle)].get();
        }
        run_call(*call, inputs, n_inputs, outputs, n_outputs, count0);
        return nullptr;
    } catch (const std::exception &e) {
        error = e.what();
        return error.c_str();
    }
}

const ndpool_foreign_api foreign_table{NDPOOL_FOREIGN_API_VERSION, &foreign_run};

// The kernels' way to the thread pool (table.hpp's Host).
void host_parallel_for(int64_t n, int64_t grain, void (*body)(void *, int64_t, int64_t), void *context) {
    ThreadPool::instance().parallel_for(n, grain, [=](int64_t begin, int64_t end) { body(context, begin, end); });
}

int host_threads() { return ThreadPool::instance().threads(); }

// What show_config() reports of the SIMD dispatch.
nb::dict simd_info() {
    const Dispatch &d = load_kernels(Host{host_parallel_for, host_threads});
    nb::dict info;
    info["simd"] = d.level;
    info["simd_built"] = d.built;
    info["simd_supported"] = d.supported;
    info["simd_forced"] = d.forced;
    return info;
}

}  // namespace

namespace ndpool {
void bind_select(nb::module_ &m);  // select.cpp: coarsen's median, mode and integer sums
void bind_median(nb::module_ &m);  // median.cpp: median pooling
void bind_roi(nb::module_ &m);     // roi.cpp: RoIPool and RoIAlign
void bind_soft(nb::module_ &m);    // soft.cpp: softmax-weighted (SoftPool, attention) pooling
}

NB_MODULE(_core, m) {
    load_kernels(Host{host_parallel_for, host_threads});  // a bad NDPOOL_SIMD stops the import here
    m.doc() = "ndpool's compiled pooling core (see backends/compiled.py for the contract)";
    m.def("set_num_threads", [](int n) {
        if (n < 1) throw std::invalid_argument("set_num_threads: n must be at least 1");
        ThreadPool::instance().set_threads(n);
    }, nb::arg("n"));
    m.def("get_num_threads", []() { return ThreadPool::instance().threads(); });
    m.def("set_local_thread_cap", &ThreadPool::set_local_cap, nb::arg("cap"),
          "Caps the threads of core calls made from the calling thread (0: no cap); returns the old cap.");
    nb::class_<Plan>(m, "Plan", "One window's axis tables as the core reads them (from plan()).");
    m.def("plan", &make_plan, nb::arg("axes"));
    m.def("reduce", &reduce_op, nb::arg("x"), nb::arg("divisor").none(), nb::arg("kind"),
          nb::arg("channels_last"), nb::arg("plan"), nb::arg("winner_bytes"));
    m.def("global_reduce", &global_op, nb::arg("x"), nb::arg("kind"), nb::arg("keepdims"));
    m.def("empty", &empty, nb::arg("shape"), nb::arg("kind"), nb::arg("itemsize"));
    m.def("simd_info", &simd_info);
    m.def("cache_limit", []() { return BufferCache::instance().limit(); });
    m.def("cached_bytes", []() { return BufferCache::instance().cached(); });
    m.def("clear_cache", []() { return BufferCache::instance().clear(); });
    m.def("scatter", &scatter_op);
    m.def("spread", &spread_op);
    m.def("split_ties", &split_ties_op);
    m.def("unpool", &unpool_op);
    m.def("unpool_backward", &unpool_backward_op);
    m.def("register_call", &register_call, nb::arg("op"), nb::arg("plan").none(), nb::arg("dtype_kind"),
          nb::arg("itemsize"), nb::arg("kind"), nb::arg("channels_last"), nb::arg("lanes"),
          nb::arg("divisor").none(), nb::arg("winner_bytes"), nb::arg("index_bytes"), nb::arg("n_in"),
          nb::arg("n_out"), "Registers a call for foreign runtimes (foreign.hpp); returns its handle.");
    m.def("foreign_api", []() {
        return nb::capsule(const_cast<ndpool_foreign_api *>(&foreign_table), "ndpool.foreign_api");
    }, "A capsule holding the core's C table for foreign runtimes (src/core/foreign.hpp).");
    bind_select(m);
    bind_median(m);
    bind_roi(m);
    bind_soft(m);
}
