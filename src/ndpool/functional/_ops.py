"""What each op means, for any rank: validate, build the Window, call the backend, restore.

Every implementation returns ``(result, pullback)``; ``pullback`` is ``None`` unless
``grad=True``, so the forward-only call does no work for the backward pass.
"""
from __future__ import annotations

import functools
import math
import numbers
from typing import Callable, Tuple

import numpy as np

from .. import backends
from .._arguments import FLOAT_TYPES, MAX_SIZE, as_input, choice, flag, int_tuple, is_int
from .._errors import fail, type_fail
from .._layout import Layout, axes3, layout_for, layout_of, layout_word, spatial3
from .._window import (Window, adaptive_window, column_major, counts_padding,
                       fractional_window, padding_form, sliding_window, stride_or_kernel,
                       unpool_window)
from ..arrays import is_dask, lazy

TIES = ("first", "split")


# ------------------------------------------------------------------- the pullback
def _pullback(op: str, y: np.ndarray, x: np.ndarray, layout: Layout,
              backward: Callable[[np.ndarray], np.ndarray]):
    """Wrap a canonical backward rule into ``pullback(dy) -> dx`` with checked ``dy``."""

    def pullback(dy):
        dy = _checked_dy(op, dy, y.shape)
        work = x.dtype if x.dtype.kind == "f" else np.result_type(dy.dtype, np.float16)
        dx3 = backward(layout.canonical(dy.astype(work, copy=False)))
        return layout.restore(dx3, layout.spatial)

    return pullback


def _in_blocks(execute, op: str, rank: int, layout: str, x, win: Window, grad: bool):
    """``execute(x, layout, win, grad=grad)`` on one block of a Dask array (see
    arrays/dask.py), the block's Layout read off its shape."""
    return execute(x, layout_for(op, x.shape, rank, layout), win, grad=grad)


def _lazily(op: str, execute, x, lay: Layout, win: Window, grad: bool, indices=False):
    """The Dask form of an op: ``execute`` mapped over the blocks of ``x``."""
    run = functools.partial(_in_blocks, execute, op, lay.rank, lay.name)
    return lazy().windowed(op, x, lay.spatial_dims, win, run, grad=grad, indices=indices,
                           plane_dims=lay.plane_dims)


def _checked_dy(op: str, dy, shape) -> np.ndarray:
    """``dy`` as an array of the output's shape and a numeric dtype, or a clear error."""
    dy = np.asarray(dy)
    if dy.shape != tuple(shape):
        fail(f"{op} pullback", f"dy has shape {dy.shape} but the output has shape {tuple(shape)}")
    if dy.dtype.type not in FLOAT_TYPES and dy.dtype.kind not in "iu":
        type_fail(f"{op} pullback", f"dy has dtype {dy.dtype}; use a float dtype")
    return dy


def _float_input(op: str, x) -> np.ndarray:
    return as_input(op, x, integers=False)


def _from_channels_first(op: str, lay: Layout, result, pullback):
    """Results and pullback of an op run on ``lay.to_first(x)``, moved back to ``lay``'s
    channels-last layout (contiguous): for the ops whose kernels read one (n, c) plane
    at a time, fractional pooling (its windows differ per plane) and unpooling."""
    back = lambda a: np.ascontiguousarray(lay.from_first(a))
    result = tuple(map(back, result)) if isinstance(result, tuple) else back(result)
    if pullback is None:
        return result, None
    shape = (result[0] if isinstance(result, tuple) else result).shape

    def moved(dy):
        return back(pullback(lay.to_first(_checked_dy(op, dy, shape))))

    return result, moved


def _sliding(op, x, rank, kernel_size, stride, padding, dilation, ceil_mode,
             count_include_pad, layout="channels_first", *,
             lp=False) -> Tuple[Layout, Window]:
    """Shared argument checks of the sliding-window pools; returns layout and window."""
    lay = layout_of(op, x, rank, layout)
    kernel = int_tuple(op, "kernel_size", kernel_size, rank)
    strides = stride_or_kernel(op, stride, rank, kernel)
    dilations = int_tuple(op, "dilation", dilation, rank)
    ceil_mode = flag(op, "ceil_mode", ceil_mode)
    pads = padding_form(op, padding, rank, kernel, ceil_mode, lay.channels_last)
    count_pad = counts_padding(pads, flag(op, "count_include_pad", count_include_pad),
                               sums=lp)
    win = sliding_window(op, lay.spatial, kernel, strides, pads, dilations, ceil_mode,
                         count_pad)
    return lay, win


# ----------------------------------------------------------------- max / min pools
def extreme_pool(kind: str, op: str, rank: int, x, kernel_size, stride=None, padding=0,
                 dilation=1, ceil_mode=False, return_indices=False, ties="first",
                 layout="channels_first", storage_order=0, *, grad=False):
    """Max (``kind="max"``) or min pooling over sliding windows."""
    x = as_input(op, x, integers=True)
    lay, win = _sliding(op, x, rank, kernel_size, stride, padding, dilation, ceil_mode,
                        False, layout)
    if storage_order not in (0, 1) or not is_int(storage_order):
        fail(op, f"storage_order={storage_order!r} is not 0 (row-major indices) or 1 "
             f"(column-major, ONNX's)")
    return _extreme(kind, op, x, lay, win, flag(op, "return_indices", return_indices),
                    choice(op, "ties", ties, TIES), grad, column=storage_order == 1)


def _extreme(kind, op, x, lay: Layout, win: Window, return_indices, ties, grad, *,
             column=False):
    """Max/min over any Window: forward, indices (column-major when ``column``), and
    the backward rule for ``ties``."""
    if is_dask(x):
        execute = functools.partial(_extreme, kind, op, return_indices=return_indices,
                                    ties=ties)
        result, pullback = _lazily(op, execute, x, lay, win, grad, indices=return_indices)
        if return_indices and column:   # renumber the whole-plane indices, block by block
            y, idx = result
            result = (y, idx.map_blocks(column_major, win.in_size, dtype=np.int64))
        return result, pullback
    backend = backends.current()
    x3, axes = lay.canonical(x), axes3(win)
    last = lay.channels_last
    if 0 in win.out_size:   # fractional pooling to an empty output: no window to take
        return _no_windows(op, x, x3, lay, win, return_indices, grad)
    # flat indices only when the caller wants them; a backward pass alone lets the
    # backend keep whatever form of the winners is cheapest
    want = "flat" if return_indices else ("any" if grad and ties == "first" else None)
    y3, idx3 = backend.reduce(x3, axes, kind, channels_last=last, indices=want)
    y = lay.restore(y3, win.out_size)
    if return_indices:
        idx = lay.restore(idx3, win.out_size)
        result = (y, column_major(idx, win.in_size) if column else idx)
    else:
        result = y
    if not grad:
        return result, None
    spatial = spatial3(lay.spatial)
    if ties == "first":
        rule = lambda dy3: backend.scatter_indices(dy3, idx3, axes, spatial,
                                                   channels_last=last)
    else:
        rule = lambda dy3: backend.split_ties(x3, dy3, axes, kind, channels_last=last)
    return result, _pullback(op, y, x, lay, rule)


def _no_windows(op, x, x3, lay: Layout, win: Window, return_indices, grad):
    """The empty result of a Window without outputs (as PyTorch returns it), and a zero
    gradient; the backends are not called."""
    out = spatial3(win.out_size)
    shape = ((lay.batch,) + out + (lay.channels,)) if lay.channels_last else (
        (lay.planes,) + out)
    y = lay.restore(np.empty(shape, x.dtype), win.out_size)
    result = (y, lay.restore(np.empty(shape, np.int64), win.out_size)) if return_indices else y
    if not grad:
        return result, None
    return result, _pullback(op, y, x, lay, lambda dy3: np.zeros(x3.shape, dy3.dtype))


def _as_float(value) -> float:
    """``float(value)``, or infinity for an int too large to be one."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


# ---------------------------------------------------------------------- averages
def avg_pool(op: str, rank: int, x, kernel_size, stride=None, padding=0, ceil_mode=False,
             count_include_pad=True, divisor_override=None, layout="channels_first",
             dilation=1, *, grad=False):
    """Average pooling with PyTorch's divisor rules (TensorFlow's for padding words);
    a dilated window (ONNX's AveragePool) counts its taps."""
    x = _float_input(op, x)
    lay, win = _sliding(op, x, rank, kernel_size, stride, padding, dilation, ceil_mode,
                        count_include_pad, layout)
    check_divisor_override(op, divisor_override)
    return _mean(op, x, lay, win, grad, divisor_override)


def check_divisor_override(op: str, divisor_override) -> None:
    if divisor_override is not None:
        if not isinstance(divisor_override, numbers.Integral) or isinstance(
                divisor_override, bool) or divisor_override == 0:
            fail(op, f"divisor_override={divisor_override!r} must be a nonzero int or None")
        if abs(divisor_override) > MAX_SIZE:
            fail(op, f"divisor_override={divisor_override!r} must be at most {MAX_SIZE} in size")


def _divisors(win: Window, override=None) -> Tuple[np.ndarray, ...]:
    """An average's divisor as one factor per canonical dim (it is always separable):
    the product ``d[0][od] * d[1][oh] * d[2][ow]`` divides output ``(od, oh, ow)``."""
    factors = tuple(axis.divisor for axis in axes3(win))
    if override is None:
        return factors
    return (np.full(factors[0].shape, float(override)),) + tuple(np.ones_like(f) for f in factors[1:])


def _mean(op, x, lay: Layout, win: Window, grad: bool, divisor_override=None):
    """Window means with the Window's divisors, or ``divisor_override``."""
    if is_dask(x):
        execute = functools.partial(_mean, op, divisor_override=divisor_override)
        return _lazily(op, execute, x, lay, win, grad)
    divisor = _divisors(win, divisor_override)
    backend = backends.current()
    axes, last = axes3(win), lay.channels_last
    y3, _ = backend.reduce(lay.canonical(x), axes, "mean", channels_last=last,
                           divisor=divisor)
    y = lay.restore(y3, win.out_size)
    if not grad:
        return y, None
    spatial = spatial3(lay.spatial)
    rule = lambda dy3: backend.spread(dy3, axes, spatial, divisor, channels_last=last)
    return y, _pullback(op, y, x, lay, rule)


# --------------------------------------------------------------------- Lp pooling
def lp_pool(op: str, rank: int, x, norm_type, kernel_size, stride=None, ceil_mode=False,
            padding=0, dilation=1, layout="channels_first", *, grad=False):
    """Power-average pooling, computed as PyTorch composes it (so partial windows agree).

    ``y = (sign(a) * relu(|a|) * K) ** (1/p)`` with ``a`` the average of ``x**p`` over the
    window's cells in the input or the padding (padded cells are zero) and ``K`` the
    kernel volume.
    """
    x = _float_input(op, x)
    check_norm_type(op, norm_type)
    p = x.dtype.type(norm_type)
    lay, win = _sliding(op, x, rank, kernel_size, stride, padding, dilation, ceil_mode,
                        True, layout, lp=True)
    volume = x.dtype.type(win.volume)
    powered = x ** p
    a, mean_pullback = _mean(op, powered, lay, win, grad)
    sign = np.sign(a)
    v = sign * np.maximum(np.abs(a), 0) * volume
    y = v ** x.dtype.type(1.0 / norm_type)
    if not grad:
        return y, None

    def pullback(dy):  # in the caller's layout, so that it serves Dask arrays as they are
        checked = lazy().checked_dy(op, dy, y) if is_dask(y) else _checked_dy(op, dy, y.shape)
        dy = checked.astype(x.dtype, copy=False)
        with np.errstate(divide="ignore", invalid="ignore"):
            g_v = dy * (x.dtype.type(1.0 / norm_type) * v ** x.dtype.type(1.0 / norm_type - 1))
            g_a = np.where(np.abs(a) > 0, g_v * volume * sign, 0).astype(x.dtype) * sign
            g_powered = mean_pullback(g_a)
            return g_powered * (p * x ** (p - 1))

    return y, pullback


# ---------------------------------------------------------------- adaptive pools
def check_norm_type(op: str, norm_type) -> None:
    if (not isinstance(norm_type, numbers.Real) or isinstance(norm_type, bool)
            or not math.isfinite(_as_float(norm_type)) or norm_type <= 0):
        fail(op, f"norm_type={norm_type!r} must be a positive finite number")


def _output_size(op: str, value, lay: Layout) -> Tuple[int, ...]:
    rank = lay.rank
    items = (value,) * rank if not isinstance(value, (tuple, list)) else tuple(value)
    if len(items) == 1:   # PyTorch broadcasts a 1-tuple
        items = items * rank
    if len(items) != rank:
        fail(op, f"output_size={value!r} must have {rank} entries, one per spatial dim")
    items = tuple(s if v is None else v for v, s in zip(items, lay.spatial))
    return _plane_fits(op, int_tuple(op, "output_size", items, rank))


def adaptive_max_pool(op: str, rank: int, x, output_size, return_indices=False,
                      layout="channels_first", *, grad=False):
    """Max over PyTorch's adaptive windows, floor(o*in/out) to ceil((o+1)*in/out)."""
    x = as_input(op, x, integers=True)
    lay = layout_of(op, x, rank, layout)
    win = adaptive_window(lay.spatial, _output_size(op, output_size, lay))
    return _extreme("max", op, x, lay, win, flag(op, "return_indices", return_indices),
                    "first", grad)


def adaptive_avg_pool(op: str, rank: int, x, output_size, layout="channels_first", *,
                      grad=False):
    """Mean over PyTorch's adaptive windows."""
    x = _float_input(op, x)
    lay = layout_of(op, x, rank, layout)
    win = adaptive_window(lay.spatial, _output_size(op, output_size, lay))
    return _mean(op, x, lay, win, grad)


# ------------------------------------------------------------------ global pools
def _global_view(op: str, x: np.ndarray):
    """``x`` as (N, C, S) planes, or as (N, S, C) when its memory is channels-last (a
    transposed view of NHWC data), so that neither is copied; with its Layout."""
    if x.ndim < 3:
        fail(op, f"x must have shape (N, C, *spatial) with at least one spatial dim, "
             f"got shape {x.shape}")
    cells = math.prod(x.shape[2:])
    if not x.flags.c_contiguous:
        last = x.transpose((0,) + tuple(range(2, x.ndim)) + (1,))
        if last.flags.c_contiguous:
            flat = last.reshape((x.shape[0], cells, x.shape[1]))
            return flat, layout_for(op, flat.shape, 1, "channels_last")
    flat = x.reshape(x.shape[:2] + (cells,))
    return flat, layout_for(op, flat.shape, 1)


@functools.lru_cache(maxsize=256)
def _whole_plane(spatial: Tuple[int, ...]):
    """The one window of a global pool over ``spatial``: its axes and divisor factors."""
    win = adaptive_window(spatial, (1,))
    return win, axes3(win), _divisors(win)


def _global(op, x, keepdims, kind, run, grad, layout="channels_first"):
    """Shared by the global pools: a forward pass goes straight to the backend (this
    path is all per-call cost on small inputs); with ``grad``, ``run(flat, layout,
    window)`` pools one window per plane and keeps its pullback. Channels-last input
    ``(N, *spatial, C)`` is read as its channels-first view, without a copy."""
    keepdims = flag(op, "keepdims", keepdims)
    if layout_word(op, layout) == "channels_last":
        return _global_channels_last(op, x, keepdims, kind, run, grad)
    backend = backends.current()
    if not grad and hasattr(backend, "global_reduce"):  # one call, when x allows it
        y = backend.global_reduce(x, kind, keepdims)
        if y is not None:
            return y, None
    flat, lay = _global_view(op, x)
    shape = x.shape[:2] + ((1,) * (x.ndim - 2) if keepdims else ())
    win, axes, divisor = _whole_plane(lay.spatial)
    if not grad:
        y, _ = backend.reduce(lay.canonical(flat), axes, kind, channels_last=lay.channels_last,
                              divisor=divisor)
        return y.reshape(shape), None
    y, pullback = run(flat, lay, win)
    result = y.reshape(shape)

    def reshaped(dy):
        dx = pullback(_checked_dy(op, dy, shape).reshape(y.shape))
        if lay.channels_last:  # back from (N, S, C) to the caller's (N, C, *spatial) view
            return np.moveaxis(dx.reshape(x.shape[:1] + x.shape[2:] + x.shape[1:2]), -1, 1)
        return dx.reshape(x.shape)

    return result, reshaped


def _global_channels_last(op, x, keepdims, kind, run, grad):
    """The global pools of ``(N, *spatial, C)``: (N, C), or (N, 1, ..., 1, C) with
    ``keepdims`` (Keras' default layout)."""
    if x.ndim < 3:
        fail(op, f"x must have shape (N, *spatial, C) with at least one spatial dim "
             f"(layout='channels_last'), got shape {x.shape}")
    y, pullback = _global(op, np.moveaxis(x, -1, 1), keepdims, kind, run, grad)
    if keepdims:
        y = np.moveaxis(y, 1, -1)
    if pullback is None:
        return y, None

    def moved(dy):
        dy = _checked_dy(op, dy, y.shape)
        return np.moveaxis(pullback(np.moveaxis(dy, -1, 1) if keepdims else dy), 1, -1)

    return y, moved


def _dask_global(op, x, kind, keepdims, grad, layout):
    """The global pools of a Dask array; channels-last input has C moved next to the
    batch for the reduction and back for the result (lazily; the pullback likewise)."""
    keepdims = flag(op, "keepdims", keepdims)
    if layout_word(op, layout) != "channels_last":
        return lazy().global_pool(op, x, kind, keepdims, grad)
    if x.ndim < 3:
        fail(op, f"x must have shape (N, *spatial, C) with at least one spatial dim "
             f"(layout='channels_last'), got shape {x.shape}")
    y, pullback = lazy().global_pool(op, np.moveaxis(x, -1, 1), kind, keepdims, grad)
    y = np.moveaxis(y, 1, -1) if keepdims else y
    if pullback is None:
        return y, None
    return y, lambda dy: np.moveaxis(pullback(np.moveaxis(dy, -1, 1) if keepdims else dy), 1, -1)


def global_max_pool(x, keepdims=False, layout="channels_first", *, grad=False):
    """Max over all spatial dims of (N, C, *spatial): shape (N, C), or keepdims."""
    op = "global_max_pool"
    x = as_input(op, x, integers=True)
    if is_dask(x):
        return _dask_global(op, x, "max", keepdims, grad, layout)
    run = lambda flat, lay, win: _extreme("max", op, flat, lay, win, False, "first", grad)
    return _global(op, x, keepdims, "max", run, grad, layout)


def global_avg_pool(x, keepdims=False, layout="channels_first", *, grad=False):
    """Mean over all spatial dims of (N, C, *spatial): shape (N, C), or keepdims."""
    op = "global_avg_pool"
    x = _float_input(op, x)
    if is_dask(x):
        return _dask_global(op, x, "mean", keepdims, grad, layout)
    run = lambda flat, lay, win: _mean(op, flat, lay, win, grad)
    return _global(op, x, keepdims, "mean", run, grad, layout)


# -------------------------------------------------------------- fractional pools
def fractional_max_pool(op: str, rank: int, x, kernel_size, output_size=None,
                        output_ratio=None, return_indices=False, samples=None, rng=None,
                        layout="channels_first", *, grad=False):
    """Max over PyTorch's pseudo-random fractional windows, reproducible via ``samples``."""
    x = _float_input(op, x)
    lay = layout_of(op, x, rank, layout)
    kernel = int_tuple(op, "kernel_size", kernel_size, rank)
    out = _fractional_size(op, lay, kernel, output_size, output_ratio)
    table = _samples(op, lay, samples, rng, x.dtype)
    if not lay.planes:   # empty batch: no windows are taken, any one row gives the geometry
        table = np.zeros((1, lay.rank), dtype=x.dtype)
    win = fractional_window(lay.spatial, out, kernel, table)
    return_indices = flag(op, "return_indices", return_indices)
    if lay.channels_last:   # the windows differ per (n, c) plane: pool plane by plane
        return _from_channels_first(op, lay, *_extreme(
            "max", op, lay.to_first(x), lay.first(), win, return_indices, "first", grad))
    return _extreme("max", op, x, lay, win, return_indices, "first", grad)


def _fractional_size(op, lay: Layout, kernel, output_size, output_ratio):
    if (output_size is None) == (output_ratio is None):
        fail(op, "give exactly one of output_size and output_ratio")
    if output_size is not None:   # 0 gives an empty output, as in PyTorch
        out = int_tuple(op, "output_size", output_size, lay.rank, minimum=0)
    else:
        ratios = output_ratio if isinstance(output_ratio, (tuple, list)) else (
            (output_ratio,) * lay.rank)
        if len(ratios) != lay.rank or not all(
                isinstance(r, numbers.Real) and 0 < r < 1 for r in ratios):
            fail(op, f"output_ratio={output_ratio!r} must be {lay.rank} numbers in (0, 1)")
        out = tuple(int(size * r) for size, r in zip(lay.spatial, ratios))
    for size, o, k in zip(lay.spatial, out, kernel):
        if o + k - 1 > size:
            fail(op, f"output size {out} with kernel_size={kernel} does not fit the input "
                 f"of spatial size {lay.spatial}", "need out + kernel - 1 <= in")
    return out


def _samples(op, lay: Layout, samples, rng, dtype) -> np.ndarray:
    """Per-plane samples in [0, 1), shape (planes, rank), in the input's float type."""
    shape = (lay.batch, lay.channels, lay.rank)
    if samples is None:
        draw = np.random.default_rng(rng).random(shape)
        below_one = np.nextafter(dtype.type(1), dtype.type(0))
        return np.minimum(draw.astype(dtype), below_one).reshape(lay.planes, lay.rank)
    table = np.asarray(samples)
    if table.dtype.kind != "f":
        type_fail(op, f"samples has dtype {table.dtype}; use a float dtype")
    # (C, dims) only for unbatched input, where it reads as (1, C, dims)
    if table.shape not in ((shape,) if lay.batched else (shape, shape[1:])):
        fail(op, f"samples must have shape {shape}, got {table.shape}")
    table = table.astype(dtype)
    if not np.all((table >= 0) & (table < 1)):
        fail(op, "samples must lie in [0, 1)")
    return table.reshape(lay.planes, lay.rank)


# ------------------------------------------------------------------ max unpooling
def max_unpool(op: str, rank: int, x, indices, kernel_size, stride=None, padding=0,
               output_size=None, layout="channels_first", *, grad=False):
    """Inverse of max pooling: zeros with ``x`` placed at ``indices`` (flat per plane)."""
    x = as_input(op, x, integers=True)
    lay = layout_of(op, x, rank, layout)
    kernel = int_tuple(op, "kernel_size", kernel_size, rank)
    strides = stride_or_kernel(op, stride, rank, kernel)
    pads = int_tuple(op, "padding", padding, rank, minimum=0)
    out = _unpool_size(op, lay, kernel, strides, pads, output_size)
    if is_dask(x) and lay.channels_last:   # the Dask form runs channels-first: move C there
        return _dask_unpool_channels_last(op, rank, lay, x, indices, kernel, strides, pads,
                                          out, grad)
    if is_dask(x):
        run = functools.partial(_unpool_block, op, rank)
        window = unpool_window(out, lay.spatial, kernel, strides, pads)
        return lazy().unpool(op, x, indices, window, lay.spatial_dims, run, grad)
    index = _unpool_indices(op, indices, x.shape, out)
    if lay.channels_last:   # the indices are flat per (n, c) plane: unpool plane by plane
        return _from_channels_first(op, lay, *_unpool(op, lay.to_first(x), lay.to_first(index),
                                                      lay.first(), out, grad))
    return _unpool(op, x, index, lay, out, grad)


def _unpool(op, x, index, lay: Layout, out, grad):
    backend = backends.current()
    x3, idx3 = lay.canonical(x), lay.canonical(index)
    y = lay.restore(backend.unpool(x3, idx3, spatial3(out)), out)
    if not grad:
        return y, None
    rule = lambda dy3: backend.unpool_backward(dy3, idx3)
    return y, _pullback(op, y, x, lay, rule)


def _dask_unpool_channels_last(op, rank, lay: Layout, x, indices, kernel, strides, pads, out,
                               grad):
    """max_unpool of channels-last Dask input: C moved next to the batch, unpooled
    channels-first, and moved back (lazily; the pullback likewise)."""
    import dask.array as da

    c_at = 1 if lay.batched else 0
    first = lambda a: da.moveaxis(da.asarray(a), -1, c_at)
    last = lambda a: da.moveaxis(a, c_at, -1)
    y, pullback = max_unpool(op, rank, first(x), first(indices), kernel, strides, pads, out,
                             "channels_first", grad=grad)
    if pullback is None:
        return last(y), None
    return last(y), lambda dy: last(pullback(first(dy)))


def _unpool_block(op, rank, x, index, out, grad):
    """max_unpool of one block of a Dask array: indices flat in the block's ``out``."""
    return _unpool(op, x, index, layout_for(op, x.shape, rank), out, grad)


def _unpool_size(op, lay: Layout, kernel, strides, pads, output_size):
    default = tuple((i - 1) * s - 2 * p + k
                    for i, s, p, k in zip(lay.spatial, strides, pads, kernel))
    if output_size is None:
        out = default
    else:
        sizes = tuple(output_size)
        if len(sizes) == lay.rank + len(lay.lead):   # the whole shape: keep its spatial dims
            start = 1 if lay.channels_last and lay.batched else (
                0 if lay.channels_last else len(lay.lead))
            sizes = sizes[start:start + lay.rank]
        out = int_tuple(op, "output_size", sizes, lay.rank)
        for o, d, s in zip(out, default, strides):
            if not d - s < o < d + s:
                fail(op, f"output_size={tuple(output_size)} must lie strictly between "
                     f"{tuple(d - s for d, s in zip(default, strides))} and "
                     f"{tuple(d + s for d, s in zip(default, strides))}")
    if min(out) < 1:
        fail(op, f"the output size {out} is empty", "check kernel_size, stride, padding")
    return _plane_fits(op, out)


def _plane_fits(op: str, out: Tuple[int, ...]) -> Tuple[int, ...]:
    """An output plane must stay addressable by the flat int64 indices (and fit memory)."""
    if math.prod(out) > MAX_SIZE:
        fail(op, f"the output size {out} has more than {MAX_SIZE} cells per plane")
    return out


def _unpool_indices(op, indices, shape, out) -> np.ndarray:
    index = np.asarray(indices)
    if index.dtype.kind not in "iu":
        type_fail(op, f"indices has dtype {index.dtype}; use an integer dtype (int64)")
    if index.shape != shape:
        fail(op, f"indices has shape {index.shape} but x has shape {shape}")
    size = math.prod(out)
    if index.size and (index.min() < 0 or index.max() >= size):
        bad = index.min() if index.min() < 0 else index.max()
        fail(op, f"indices must lie in [0, {size}) for an output of spatial size {out}, "
             f"found {int(bad)}")
    return index.astype(np.int64, copy=False)


# ----------------------------------------------------------- any axes, any rank
POOL_OPS = ("max", "min", "avg", "sum")
#: the compiled core pools up to this many dims in one pass; more are pooled in passes
PASS_DIMS = 3


def _pool_axes(op: str, ndim: int, axes) -> Tuple[int, ...]:
    """``axes`` (None: every axis; an int; a sequence of ints) as sorted non-negative dims."""
    if axes is None:
        return tuple(range(ndim))
    items = (axes,) if isinstance(axes, numbers.Integral) and not isinstance(axes, bool) else axes
    if not isinstance(items, (tuple, list)) or not items or not all(
            isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in items):
        type_fail(op, f"axes={axes!r} must be None, an int or a non-empty tuple of ints")
    if not all(-ndim <= a < ndim for a in items):
        fail(op, f"axes={axes!r} names a dim outside an array of {ndim} dims")
    dims = tuple(int(a) % ndim for a in items)
    if len(set(dims)) != len(dims):
        fail(op, f"axes={axes!r} names a dim twice")
    return dims


def pool(x, op, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
         axes=None, grad=False):
    """Sliding-window ``op`` over ``axes`` of an array of any rank (NumPy or Dask).

    Each axis gets its entry of ``kernel_size``, ``stride``, ``padding`` and ``dilation``
    (or the one int); up to three axes go through the compiled core in one pass, more in
    passes of three (every op here is separable: a max over a box is the max over its
    first dims of the max over the rest).
    """
    name = "pool"
    reduction = choice(name, "op", op, POOL_OPS)
    x = as_input(name, x, integers=reduction in ("max", "min"))
    dims = _pool_axes(name, x.ndim, axes)
    rank = len(dims)
    kernel = int_tuple(name, "kernel_size", kernel_size, rank)
    strides = stride_or_kernel(name, stride, rank, kernel)
    dilations = int_tuple(name, "dilation", dilation, rank)
    ceil_mode = flag(name, "ceil_mode", ceil_mode)
    pads = padding_form(name, padding, rank, kernel, ceil_mode)
    if any(x.shape[d] == 0 for d in dims):
        fail(name, f"x has an empty dim among axes={tuple(dims)}, shape {x.shape}")
    pullbacks, y = [], x
    for start in range(0, rank, PASS_DIMS):
        group = slice(start, start + PASS_DIMS)
        pick = lambda values: values if isinstance(values, str) else values[group]
        win = sliding_window(name, tuple(x.shape[d] for d in dims[group]), kernel[group],
                             strides[group], pick(pads), dilations[group], ceil_mode,
                             counts_padding(pick(pads), True))
        y, pullback = _pool_pass(reduction, name, y, dims[group], win, grad)
        pullbacks.append(pullback)
    if not grad:
        return y, None

    def chained(dy):
        for pullback in reversed(pullbacks):
            dy = pullback(dy)
        return dy

    return y, chained


def _pool_pass(reduction: str, name: str, x, dims: Tuple[int, ...], win: Window, grad: bool):
    """One pass of ``pool`` over up to three ``dims``: the dims moved last and every
    other dim made planes, the ops layer's max/min or mean, and back."""
    if is_dask(x):
        run = functools.partial(_pool_block, reduction, name, dims)
        return lazy().windowed(name, x, dims, win, run, grad=grad)
    rank = len(dims)
    last = tuple(range(x.ndim - rank, x.ndim))
    moved = np.moveaxis(x, dims, last)
    lead = moved.shape[:x.ndim - rank]
    planes = moved.reshape((math.prod(lead),) + moved.shape[x.ndim - rank:])
    lay = layout_for(name, planes.shape, rank)
    if reduction in ("max", "min"):
        y, pullback = _extreme(reduction, name, planes, lay, win, False, "first", grad)
    else:
        y, pullback = _mean(name, planes, lay, win, grad, 1 if reduction == "sum" else None)
    back = lambda a, spatial: np.moveaxis(a.reshape(lead + tuple(spatial)), last, dims)
    result = back(y, win.out_size)
    if not grad:
        return result, None

    def pass_pullback(dy):
        dy = _checked_dy(name, dy, result.shape)
        flat = np.moveaxis(dy, dims, last).reshape(y.shape)
        return back(pullback(flat), win.in_size)

    return result, pass_pullback


def _pool_block(reduction, name, dims, x, win, grad):
    """``_pool_pass`` on one block of a Dask array."""
    return _pool_pass(reduction, name, x, dims, win, grad)


# ------------------------------------------------- softmax-weighted (SoftPool, LIP)
def soft_pool(op: str, rank: int, x, kernel_size, stride=None, padding=0, ceil_mode=False,
              layout="channels_first", *, grad=False):
    """SoftPool (Stergiou et al. 2021): each window's ``sum(exp(x)·x) / sum(exp(x))`` over
    its in-bounds cells, shifted by the window's max."""
    x = _float_input(op, x)
    lay, win = _sliding(op, x, rank, kernel_size, stride, padding, 1, ceil_mode, False,
                        layout)
    return _softmax_weighted(op, x, None, lay, win, grad)


def attention_pool(op: str, rank: int, x, logits, kernel_size, stride=None, padding=0,
                   layout="channels_first", *, grad=False):
    """Attention (LIP) pooling: each window's cells weighted by the softmax of ``logits``
    over its in-bounds cells. The pullback returns ``{"x": dx, "logits": dlogits}``."""
    x = _float_input(op, x)
    logits = _logits(op, logits, x)
    lay, win = _sliding(op, x, rank, kernel_size, stride, padding, 1, False, False, layout)
    return _softmax_weighted(op, x, logits, lay, win, grad)


def _soft_block(op, x, lay: Layout, win: Window, grad=False):
    """SoftPool of one block of a Dask array (see arrays/dask.py)."""
    return _softmax_weighted(op, x, None, lay, win, grad)


def _logits(op: str, logits, x: np.ndarray) -> np.ndarray:
    """``logits`` as an array of x's shape, in x's dtype (a float dtype of its own is
    computed in x's, as the output is)."""
    if isinstance(logits, (str, bytes)) or logits is None:
        type_fail(op, f"logits must be an array of x's shape, got {type(logits).__name__}")
    if is_dask(logits) or is_dask(x):
        type_fail(op, "attention pooling takes NumPy arrays, not Dask arrays",
                  "compute the arrays first")
    array = np.asarray(logits)
    if array.dtype.type not in FLOAT_TYPES:
        type_fail(op, f"logits has dtype {array.dtype}; use a float dtype")
    if array.shape != x.shape:
        fail(op, f"logits has shape {array.shape} but x has shape {x.shape}",
             "give one logit per cell of x")
    return array.astype(x.dtype, copy=False)


def _softmax_weighted(op, x, logits, lay: Layout, win: Window, grad: bool):
    """The shared body: the backend's softmax-weighted window means of canonical views,
    and a pullback giving dx (SoftPool) or ``{"x": dx, "logits": dlogits}``."""
    if is_dask(x):   # SoftPool only: a window's result needs its own cells, halos give them
        if logits is not None:
            type_fail(op, "attention pooling takes NumPy arrays, not Dask arrays",
                      "compute the arrays first")
        return _lazily(op, functools.partial(_soft_block, op), x, lay, win, grad)
    backend = backends.current()
    axes, last = axes3(win), lay.channels_last
    x3 = lay.canonical(x)
    l3 = None if logits is None else lay.canonical(logits)
    y = lay.restore(backend.soft_pool(x3, l3, axes, channels_last=last), win.out_size)
    if not grad:
        return y, None

    def pullback(dy):
        dy3 = lay.canonical(_checked_dy(op, dy, y.shape).astype(x.dtype, copy=False))
        dx3, dl3 = backend.soft_pool_backward(x3, l3, dy3, axes, channels_last=last)
        dx = lay.restore(dx3, lay.spatial)
        if logits is None:
            return dx
        return {"x": dx, "logits": lay.restore(dl3, lay.spatial)}

    return y, pullback
