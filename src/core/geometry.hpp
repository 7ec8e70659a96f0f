// The plain data every kernel receives: per-dim window tables (decided once, in
// _window.py), the plane/lane counts, the outputs and an average's divisor. Shared by the
// host module and every kernel library, so it holds no code that depends on the CPU.
#pragma once

#include <cstdint>

namespace ndpool {

using i64 = int64_t;

// Windows along one spatial dim (see _window.Axis); rows per plane when per_plane.
struct Axis {
    const i64 *first = nullptr, *count = nullptr, *skip = nullptr;
    i64 step = 1;      // distance between taps (the dilation)
    i64 stride = 0;    // > 0 for sliding windows
    i64 n_in = 1, n_out = 1, kernel = 1;
    bool per_plane = false;
    bool trivial = false;  // every window is the single cell o: the pass is a no-op

    i64 row(i64 plane) const { return per_plane ? plane * n_out : 0; }
    i64 start(i64 plane, i64 o) const {  // first tap of the full kernel, maybe in padding
        i64 r = row(plane) + o;
        return first[r] - skip[r] * step;
    }
    // sliding windows whose taps never overlap: each input cell is in at most one window
    bool disjoint() const { return trivial || (stride > 0 && !per_plane && stride >= (kernel - 1) * step + 1); }
};

struct Geometry {
    Axis axis[3];    // D, H, W
    i64 planes = 0;  // channels-first: N*C planes; channels-last: N images
    i64 lanes = 1;   // channels-last: C channels interleaved innermost

    i64 in_plane() const { return axis[0].n_in * axis[1].n_in * axis[2].n_in * lanes; }
    i64 out_plane() const { return axis[0].n_out * axis[1].n_out * axis[2].n_out * lanes; }
    i64 volume() const { return axis[0].kernel * axis[1].kernel * axis[2].kernel; }
};

// Output index kinds: none, compact kernel offsets of three widths, flat int64 indices.
enum class IndexKind { none, u8, u16, flat };

// An average's divisor: one factor per dim, output (od, oh, ow) divided by their product.
struct Divisor {
    const double *factor[3] = {nullptr, nullptr, nullptr};
    explicit operator bool() const { return factor[0] != nullptr; }
    double row(i64 od, i64 oh) const { return factor[0][od] * factor[1][oh]; }
    double at(i64 od, i64 oh, i64 ow) const { return row(od, oh) * factor[2][ow]; }
};

struct Outputs {
    void *y = nullptr;
    void *arg = nullptr;
    IndexKind kind = IndexKind::none;
    Divisor divisor;  // set for a mean
};

}  // namespace ndpool
