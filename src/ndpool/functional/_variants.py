"""The pooling variants the frameworks lack: stochastic, generalized-mean, anti-aliased
(blur) and spatial-pyramid pooling, each with its backward rule.

Each implementation returns ``(result, pullback)`` as the ops of ``_ops`` do; the ones
differentiable in more than ``x`` (GeM's ``p``) return a pullback giving a dict of
gradients, one per name of the op's ``_ndpool_wrt``.
"""
from __future__ import annotations

import itertools
import math
import numbers
from typing import Tuple

import numpy as np

from .._arguments import as_input, choice, flag, int_tuple, is_int
from .._errors import fail, type_fail
from .._layout import layout_of
from .._window import sliding_window, stride_or_kernel
from ..arrays import is_dask
from . import _ops


def _array_input(op: str, x, *, integers: bool = False) -> np.ndarray:
    """``x`` checked as the other ops check it; these ops run on NumPy arrays only."""
    if is_dask(x):
        type_fail(op, "x is a Dask array, which this op does not take yet",
                  "compute it first: np.asarray(x)")
    return as_input(op, x, integers=integers)


def _work_dtype(dtype: np.dtype) -> np.dtype:
    """float16 is computed in float32 (as every op accumulates it), the rest as given."""
    return np.dtype(np.float32) if dtype == np.float16 else dtype


# ------------------------------------------------------------------ stochastic
def stochastic_pool(op: str, rank: int, x, kernel_size, stride=None, training=True,
                    rng=None, *, grad=False):
    """Zeiler & Fergus 2013: in training one cell per window drawn with probability
    proportional to its value, in evaluation the probability-weighted mean."""
    x = _array_input(op, x)
    lay = layout_of(op, x, rank)
    kernel = int_tuple(op, "kernel_size", kernel_size, rank)
    strides = stride_or_kernel(op, stride, rank, kernel)
    training = flag(op, "training", training)
    win = _unpadded_window(op, lay.spatial, kernel, strides)
    if x.size and np.less(x, 0).any():
        fail(op, f"x must be non-negative, found {float(x.min())!r}",
             "stochastic pooling draws cells with probability proportional to their "
             "values; apply a ReLU first")
    if training:
        uniform = _generator(op, rng).random(lay.lead + win.out_size)
        return _stochastic_draw(op, x, lay, win, uniform, grad)
    return _stochastic_mean(op, x, lay, win, grad)


def _unpadded_window(op: str, spatial, kernel, strides):
    """The Window of windows of ``kernel`` at ``strides`` with no padding."""
    if any(k > n for k, n in zip(kernel, spatial)):
        fail(op, f"kernel_size={kernel} does not fit in the input of spatial size "
             f"{tuple(spatial)}", "these windows take no padding")
    rank = len(kernel)
    return sliding_window(op, spatial, kernel, strides, ((0, 0),) * rank, (1,) * rank,
                          False, False)


def _generator(op: str, rng) -> np.random.Generator:
    """``numpy.random.default_rng(rng)``, its complaints about ``rng`` named for ``op``."""
    try:
        return np.random.default_rng(rng)
    except TypeError as error:
        type_fail(op, f"rng={rng!r} is not a seed or a generator ({error})")
    except ValueError as error:
        fail(op, f"rng={rng!r} is not a seed or a generator ({error})")


def _taps(x3: np.ndarray, kernel3, stride3, out3):
    """Each window tap's cells, one per window, as strided views of the canonical planes
    ``x3`` (P, D, H, W), in row-major window order: no window is copied."""
    for offset in itertools.product(*map(range, kernel3)):
        yield x3[(slice(None),) + tuple(slice(o, o + s * (n - 1) + 1, s)
                                        for o, s, n in zip(offset, stride3, out3))]


def _stochastic_draw(op, x, lay, win, uniform, grad):
    """One cell per window: the first, in row-major window order, whose running sum of
    values exceeds ``uniform * (window sum)``; an all-zero window gives 0. The sums run
    tap by tap in float64, in the same order as a loop over the window would."""
    pad = (1,) * (3 - lay.rank)
    kernel3, stride3, out3 = pad + win.kernel, pad + win.stride, pad + win.out_size
    x3 = lay.canonical(x)
    taps = math.prod(kernel3)
    total = np.zeros((x3.shape[0],) + out3)
    for cells in _taps(x3, kernel3, stride3, out3):
        total += cells
    threshold = uniform.reshape(total.shape) * total
    running = np.zeros_like(total)
    pick = np.zeros(total.shape, np.int32)       # how many running sums stay <= threshold
    for cells in _taps(x3, kernel3, stride3, out3):
        running += cells
        pick += running <= threshold
    np.minimum(pick, taps - 1, out=pick)
    chosen = np.zeros(total.shape, x.dtype)
    for j, cells in enumerate(_taps(x3, kernel3, stride3, out3)):
        np.copyto(chosen, cells, where=pick == j)
    empty = ~(total > 0)                              # all zeros (or NaN: kept as NaN)
    chosen[total == 0] = 0
    chosen[np.isnan(total)] = np.nan
    y = lay.restore(chosen, win.out_size)
    if not grad:
        return y, None
    # flat per-plane index of each drawn cell, for the scatter of dy
    offsets = np.unravel_index(pick, kernel3)
    spatial3 = x3.shape[1:]
    starts = np.meshgrid(*(np.arange(n) * s for n, s in zip(out3, stride3)), indexing="ij")
    cell = [start[None] + offset for start, offset in zip(starts, offsets)]
    flat = (cell[0] * spatial3[1] + cell[1]) * spatial3[2] + cell[2]
    cells = math.prod(spatial3)
    where = (np.arange(x3.shape[0]).reshape(-1, 1, 1, 1) * cells + flat)[~empty]

    def backward(dy3):
        dx = np.bincount(where, weights=dy3.astype(np.float64)[~empty],
                         minlength=x3.shape[0] * cells)
        return dx.astype(dy3.dtype).reshape(x3.shape)

    return y, _ops._pullback(op, y, x, lay, backward)


def _stochastic_mean(op, x, lay, win, grad):
    """``sum(x**2) / sum(x)`` per window (0 for a window of zeros), from two window sums."""
    work = x.astype(_work_dtype(x.dtype), copy=False)
    total, total_pullback = _ops._mean(op, work, lay, win, grad, 1)
    squares, squares_pullback = _ops._mean(op, work * work, lay, win, grad, 1)
    positive = total > 0
    safe = np.where(positive, total, 1)
    mean = np.where(positive, squares / safe, np.where(np.isnan(total), np.nan, 0))
    y = mean.astype(x.dtype)
    if not grad:
        return y, None

    def pullback(dy):
        dy = _ops._checked_dy(op, dy, y.shape).astype(work.dtype)
        # d(Q/S)/dx_i = 2 x_i / S - Q / S**2 for the windows holding cell i
        per_square = np.where(positive, dy / safe, 0)
        per_total = np.where(positive, -dy * squares / (safe * safe), 0)
        dx = 2 * work * squares_pullback(per_square) + total_pullback(per_total)
        return dx.astype(x.dtype)

    return y, pullback


# ---------------------------------------------------------- generalized mean (GeM)
def _positive_number(op: str, name: str, value) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        type_fail(op, f"{name}={value!r} must be a positive number")
    if not math.isfinite(_ops._as_float(value)) or value <= 0:
        fail(op, f"{name}={value!r} must be a positive finite number")
    return float(value)


def _gem_exponent(op: str, p, channels: int) -> np.ndarray:
    """``p`` as a float64 array of shape (), (1,) or (C,), each entry positive, finite."""
    if isinstance(p, numbers.Real) and not isinstance(p, (bool, np.bool_)):
        return np.array(_positive_number(op, "p", p))
    if isinstance(p, (str, bytes, bool, np.bool_)) or p is None:
        type_fail(op, f"p={p!r} must be a positive number or an array of them")
    try:
        array = np.asarray(p)
    except Exception:  # noqa: BLE001  ragged lists and other things NumPy refuses
        type_fail(op, f"p={p!r} must be a positive number or an array of them")
    if array.dtype.kind not in "fiu":
        type_fail(op, f"p has dtype {array.dtype}; use a float array")
    if array.shape not in ((), (1,), (channels,)):
        fail(op, f"p has shape {array.shape}; use a number, shape (1,) or one per channel "
             f"({channels},)")
    array = array.astype(np.float64)
    if not (np.isfinite(array).all() and (array > 0).all()):
        fail(op, f"p={p!r} must hold positive finite numbers")
    return array


def _power(base: np.ndarray, exponent: np.ndarray, power: np.ndarray) -> np.ndarray:
    """``base ** power`` for positive ``base``: products for a small whole exponent (as
    exact as pow, and several times faster), else ``exp(power * log(base))``, whose
    vectorised exp and log beat NumPy's generic pow."""
    if exponent.size == 1 and float(exponent.flat[0]) in (1.0, 2.0, 3.0, 4.0):
        whole = int(exponent.flat[0])
        out = base.copy()
        for _ in range(whole - 1):
            out *= base
        return out
    return np.exp(power * np.log(base))


def global_gem_pool(x, p=3.0, eps=1e-6, keepdims=False, *, grad=False):
    """Generalized-mean pooling, ``mean(max(x, eps)**p) ** (1/p)`` per plane."""
    op = "global_gem_pool"
    x = _array_input(op, x)
    if x.ndim < 3:
        fail(op, f"x must have shape (N, C, *spatial) with at least one spatial dim, "
             f"got shape {x.shape}")
    if any(s == 0 for s in x.shape[2:]):
        fail(op, f"x has an empty spatial dim, shape {x.shape}")
    exponent = _gem_exponent(op, p, x.shape[1])
    floor = _positive_number(op, "eps", eps)
    keepdims = flag(op, "keepdims", keepdims)
    work = _work_dtype(x.dtype)
    spatial = tuple(range(2, x.ndim))
    power = exponent.astype(work).reshape((-1,) + (1,) * len(spatial))   # per channel
    clamped = np.maximum(x.astype(work, copy=False), work.type(floor))
    powered = _power(clamped, exponent, power)
    mean = powered.mean(axis=spatial, keepdims=True, dtype=work)
    pooled = mean ** (1 / power)
    y = (pooled if keepdims else pooled.reshape(x.shape[:2])).astype(x.dtype)
    if not grad:
        return y, None

    def pullback(dy):
        dy = _ops._checked_dy(op, dy, y.shape).astype(work).reshape(pooled.shape)
        cells = math.prod(x.shape[2:])
        with np.errstate(divide="ignore", invalid="ignore"):
            # dy/dx = m**(1/p - 1) * c**(p - 1) / cells where x >= eps (clamp's rule)
            scale = dy * pooled / mean / cells
            dx = np.where(x >= floor, scale * powered / clamped, 0).astype(x.dtype)
            # dy/dp = y * (mean(c**p log c) / (p m) - log(m) / p**2)
            weighted = (powered * np.log(clamped)).mean(axis=spatial, keepdims=True)
            per_plane = dy * pooled * (weighted / (power * mean) - np.log(mean) / power ** 2)
        per_channel = exponent.shape == (x.shape[1],)
        dp = per_plane.sum(axis=(0,) + spatial, dtype=np.float64) if per_channel else (
            per_plane.sum(dtype=np.float64))
        return {"x": dx, "p": np.asarray(dp, x.dtype).reshape(exponent.shape)}

    return y, pullback


# ---------------------------------------------------------------- blur pooling
#: numpy.pad's name of each padding mode
PADDING_MODES = {"reflect": "reflect", "zeros": "constant", "replicate": "edge",
                 "circular": "wrap"}
MAX_FILTER = 7


def binomial_filter(size: int) -> np.ndarray:
    """The normalised 1-D binomial filter of ``size`` taps (row ``size - 1`` of Pascal's
    triangle over its sum ``2**(size - 1)``: exact in binary floating point)."""
    row = np.array([math.comb(size - 1, j) for j in range(size)], dtype=np.float64)
    return row / row.sum()


def _blur_arguments(op: str, rank: int, x, filter_size, stride, padding_mode):
    sizes = int_tuple(op, "filter_size", filter_size, rank)
    if any(k > MAX_FILTER for k in sizes):
        fail(op, f"filter_size={filter_size!r} must be at most {MAX_FILTER}",
             "the binomial filters have 1 to 7 taps")
    strides = int_tuple(op, "stride", stride, rank)
    mode = choice(op, "padding_mode", padding_mode, tuple(PADDING_MODES))
    spatial = x.shape[x.ndim - rank:]
    for n, k in zip(spatial, sizes):
        before, after = (k - 1) // 2, k // 2
        if mode == "reflect" and max(before, after) >= n:
            fail(op, f"padding_mode='reflect' with filter_size={filter_size!r} pads "
                 f"{max(before, after)} cells, which needs every spatial size above that; "
                 f"got input of spatial size {tuple(spatial)}",
                 "use a smaller filter_size or padding_mode='replicate'")
        if mode == "circular" and max(before, after) > n:
            fail(op, f"padding_mode='circular' with filter_size={filter_size!r} pads "
                 f"{max(before, after)} cells, more than the input of spatial size "
                 f"{tuple(spatial)} holds")
    return sizes, strides, mode


def blur_pool(op: str, rank: int, x, filter_size=3, stride=2, padding_mode="reflect", *,
              grad=False):
    """Zhang 2019: depthwise binomial blur, then subsampling by ``stride``."""
    x = _array_input(op, x)
    layout_of(op, x, rank)
    sizes, strides, mode = _blur_arguments(op, rank, x, filter_size, stride, padding_mode)
    return _blur(op, rank, x, sizes, strides, mode, grad)


def _blur(op, rank, x, sizes, strides, mode, grad):
    """The blur as one strided 1-D pass per spatial dim, the last dim first (it shrinks
    the data the other passes read)."""
    work = _work_dtype(x.dtype)
    y = x.astype(work, copy=False)
    passes = []
    for axis in range(x.ndim - 1, x.ndim - rank - 1, -1):
        dim = axis - (x.ndim - rank)
        step = _BlurPass(axis, y.shape[axis], sizes[dim], strides[dim], mode, work)
        y = step.forward(y)
        passes.append(step)
    result = y.astype(x.dtype, copy=False)
    if not grad:
        return result, None

    def pullback(dy):
        dy = _ops._checked_dy(op, dy, result.shape).astype(work)
        for step in reversed(passes):
            dy = step.backward(dy)
        return dy.astype(x.dtype)

    return result, pullback


#: a dim of at most this many cells is blurred as one matrix product (the pass's padding,
#: filter and stride as a (size, out) matrix: no padded copy, and BLAS beats NumPy's short
#: strided loops); longer dims in strided slices, whose cost does not grow with the size
MATRIX_SIZE = 64


class _BlurPass:
    """One dim's padding, binomial filter and stride: ``forward`` and its adjoint."""

    def __init__(self, axis: int, size: int, taps: int, stride: int, mode: str, dtype):
        self.axis, self.size, self.stride, self.mode = axis, size, stride, mode
        self.weights = binomial_filter(taps).astype(dtype)
        self.before, self.after = (taps - 1) // 2, taps // 2
        self.padded = size + self.before + self.after
        self.out = -(-size // stride)
        # where each padded cell reads from (-1: a zero)
        cell = np.arange(self.padded) - self.before
        if mode == "reflect":
            cell = np.abs(cell)
            cell = np.where(cell >= size, 2 * (size - 1) - cell, cell)
        elif mode == "replicate":
            cell = np.clip(cell, 0, size - 1)
        elif mode == "circular":
            cell = cell % size
        else:
            cell = np.where((cell >= 0) & (cell < size), cell, -1)
        self.source = cell
        self.matrix = self._matrix(dtype) if size <= MATRIX_SIZE else None

    def _matrix(self, dtype) -> np.ndarray:
        """The pass as a (size, out) matrix: column o holds each input cell's weight in
        output o (a padded cell's weight added to the cell it copies)."""
        matrix = np.zeros((self.size, self.out))
        outputs = np.arange(self.out)
        for j, weight in enumerate(self.weights.astype(np.float64)):
            source = self.source[outputs * self.stride + j]
            inside = source >= 0
            np.add.at(matrix, (source[inside], outputs[inside]), weight)
        return matrix.astype(dtype)

    def _product(self, a: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """``a`` times ``matrix`` (rows: a's cells along the axis) along the pass's axis."""
        lead, tail = math.prod(a.shape[:self.axis]), math.prod(a.shape[self.axis + 1:])
        shape = list(a.shape)
        shape[self.axis] = matrix.shape[1]
        if tail == 1:   # stacked small products: far faster than one tall, thin GEMM
            rows = a.shape[self.axis - 1] if self.axis else 1
            return np.matmul(a.reshape(-1, rows, a.shape[self.axis]), matrix).reshape(shape)
        return np.matmul(matrix.T, a.reshape(lead, a.shape[self.axis], tail)).reshape(shape)

    def _tap(self, j: int):
        """The padded cells tap ``j`` reads, one per output, along the pass's axis."""
        return slice(j, j + self.stride * (self.out - 1) + 1, self.stride)

    def _along(self, index, ndim: int):
        return (slice(None),) * self.axis + (index,) + (slice(None),) * (ndim - self.axis - 1)

    def _edges(self):
        """The padded positions outside the input (at most 3 on each side)."""
        return list(range(self.before)) + list(range(self.before + self.size, self.padded))

    def _pad(self, x: np.ndarray) -> np.ndarray:
        """``x`` padded along the axis: one copy and a few edge slices (``np.take`` with
        the source table, its one-line form, is several times slower)."""
        shape = list(x.shape)
        shape[self.axis] = self.padded
        padded = np.empty(shape, x.dtype)
        padded[self._along(slice(self.before, self.before + self.size), x.ndim)] = x
        for position in self._edges():
            source = self.source[position]
            padded[self._along(position, x.ndim)] = (
                0 if source < 0 else x[self._along(source, x.ndim)])
        return padded

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.matrix is not None:
            return self._product(x, self.matrix)
        padded = self._pad(x)
        taps = len(self.weights)
        # the filter is symmetric: tap j and tap taps-1-j share a weight
        y = None
        for j in range(taps // 2 + taps % 2):
            mirror = taps - 1 - j
            term = padded[self._along(self._tap(j), x.ndim)]
            term = term + padded[self._along(self._tap(mirror), x.ndim)] if mirror != j \
                else term.copy()
            term *= self.weights[j]
            y = term if y is None else np.add(y, term, out=y)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self.matrix is not None:
            return self._product(dy, self.matrix.T)
        shape = list(dy.shape)
        shape[self.axis] = self.padded
        dpadded = np.zeros(shape, dy.dtype)
        taps = len(self.weights)
        share = np.empty_like(dy)
        for j in range(taps // 2 + taps % 2):   # mirrored taps share their weight
            np.multiply(dy, self.weights[j], out=share)
            for tap in {j, taps - 1 - j}:
                dpadded[self._along(self._tap(tap), dy.ndim)] += share
        inside = slice(self.before, self.before + self.size)
        dx = dpadded[self._along(inside, dy.ndim)].copy()
        if self.mode != "zeros":   # the padded cells' gradient goes to the cells they copy
            for position in self._edges():
                dx[self._along(self.source[position], dy.ndim)] += \
                    dpadded[self._along(position, dy.ndim)]
        return dx


def max_blur_pool(op: str, x, kernel_size=2, filter_size=3, stride=2,
                  padding_mode="reflect", *, grad=False):
    """Max pooling with stride 1 and no padding, then the blur pool (Zhang 2019)."""
    rank = 2
    x = _array_input(op, x)
    lay = layout_of(op, x, rank)
    kernel = int_tuple(op, "kernel_size", kernel_size, rank)
    win = _unpadded_window(op, lay.spatial, kernel, (1,) * rank)
    peak, peak_pullback = _ops._extreme("max", op, x, lay, win, False, "first", grad)
    sizes, strides, mode = _blur_arguments(op, rank, peak, filter_size, stride, padding_mode)
    y, blur_pullback = _blur(op, rank, peak, sizes, strides, mode, grad)
    if not grad:
        return y, None
    return y, lambda dy: peak_pullback(blur_pullback(dy))


# ---------------------------------------------------------- spatial pyramid pooling
PYRAMID_MODES = ("max", "avg")


def _levels(op: str, levels) -> Tuple[int, ...]:
    items = (levels,) if is_int(levels) else levels
    if not isinstance(items, (tuple, list)) or not items or not all(is_int(n) for n in items):
        type_fail(op, f"levels={levels!r} must be an int or a non-empty tuple of ints")
    if any(n < 1 for n in items):
        fail(op, f"levels={levels!r} must hold sizes of at least 1")
    return tuple(int_tuple(op, "levels", n, 1)[0] for n in items)


def spatial_pyramid_pool(x, levels=(1, 2, 4), mode="max", *, grad=False):
    """He et al. 2014: adaptive pools to n x n (x n) for each level n, flattened from
    (C, n, n) and concatenated: (N, C * sum(n**rank))."""
    op = "spatial_pyramid_pool"
    mode = choice(op, "mode", mode, PYRAMID_MODES)
    x = _array_input(op, x, integers=mode == "max")
    if x.ndim not in (4, 5):
        fail(op, f"x must have 4 dims (N, C, H, W) or 5 (N, C, D, H, W), got shape "
             f"{x.shape}")
    rank = x.ndim - 2
    sizes = _levels(op, levels)
    pooled, pullbacks = [], []
    for n in sizes:
        if mode == "max":
            part, pullback = _ops.adaptive_max_pool(op, rank, x, n, grad=grad)
        else:
            part, pullback = _ops.adaptive_avg_pool(op, rank, x, n, grad=grad)
        pooled.append(part.reshape(len(x), -1))
        pullbacks.append((part.shape, pullback))
    y = np.concatenate(pooled, axis=1)
    if not grad:
        return y, None
    bounds = np.cumsum([0] + [p.shape[1] for p in pooled])

    def pullback(dy):
        dy = _ops._checked_dy(op, dy, y.shape)
        dx = None
        for (shape, level_pullback), lo, hi in zip(pullbacks, bounds[:-1], bounds[1:]):
            part = level_pullback(dy[:, lo:hi].reshape(shape))
            dx = part if dx is None else np.add(dx, part, out=dx)
        return dx

    return y, pullback
