// A window's three axis tables as the host module reads them (module.cpp's plan()), shared
// by the host module's files (module.cpp, soft.cpp) so that every binding takes the same
// Plan object that the Python adapter caches.
#pragma once

#include <nanobind/nanobind.h>

#include "geometry.hpp"

namespace ndpool {

// The three axes' tables, read once per window and spatial size (the adapter caches
// Plans), with the tuple that keeps their arrays alive.
struct Plan {
    Axis axis[3];
    i64 rows = 1;  // planes the tables are for: 1, or one row per plane (fractional)
    nanobind::object keep;
};

}  // namespace ndpool
