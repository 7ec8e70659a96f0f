// The backward kernels of one level: scatter to the winner, spread over the window,
// split ties, and max-unpooling with its gradient.
#include "entries.hpp"

namespace ndpool {

namespace {

template <class T, class I, bool Flat>
void scatter_entry(const void *dy, const void *arg, void *dx, const Geometry &g) {
    scatter<T, I, Flat>(static_cast<const T *>(dy), static_cast<const I *>(arg), static_cast<T *>(dx), g);
}

template <class T>
void spread_entry(const void *dy, const Divisor &divisor, void *dx, const Geometry &g) {
    spread<T>(static_cast<const T *>(dy), divisor, static_cast<T *>(dx), g);
}

template <class R, class T>
void split_ties_entry(const void *x, const void *dy, void *dx, const Geometry &g) {
    split_ties<R, T>(static_cast<const T *>(x), static_cast<const T *>(dy), static_cast<T *>(dx), g);
}

template <class T>
void unpool_entry(const void *x, const int64_t *index, void *y, i64 planes, i64 n_in, i64 n_out) {
    unpool<T>(static_cast<const T *>(x), index, static_cast<T *>(y), planes, n_in, n_out);
}

template <class T>
void unpool_backward_entry(const void *dy, const int64_t *index, void *dx, i64 planes, i64 n_in, i64 n_out) {
    unpool_backward<T>(static_cast<const T *>(dy), index, static_cast<T *>(dx), planes, n_in, n_out);
}

template <class... T>
void fill_float(KernelTable &table, Types<T...>) {
    ((table.scatter[Code<T>::value][slot_u8] = &scatter_entry<T, uint8_t, false>), ...);
    ((table.scatter[Code<T>::value][slot_u16] = &scatter_entry<T, uint16_t, false>), ...);
    ((table.scatter[Code<T>::value][slot_flat] = &scatter_entry<T, int64_t, true>), ...);
    ((table.spread[Code<T>::value] = &spread_entry<T>), ...);
}

template <class... T>
void fill_any(KernelTable &table, Types<T...>) {
    ((table.split_ties[0][Code<T>::value] = &split_ties_entry<Max, T>), ...);
    ((table.split_ties[1][Code<T>::value] = &split_ties_entry<Min, T>), ...);
    ((table.unpool[Code<T>::value] = &unpool_entry<T>), ...);
    ((table.unpool_backward[Code<T>::value] = &unpool_backward_entry<T>), ...);
}

}  // namespace

void fill_backward(KernelTable &table) {
    fill_float(table, FloatTypes{});
    fill_any(table, FloatTypes{});
    fill_any(table, IntegerTypes{});
}

}  // namespace ndpool
