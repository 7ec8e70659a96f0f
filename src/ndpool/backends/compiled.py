"""Adapter to the compiled core: allocate outputs, hand the Window's tables to C++.

The core reads C-contiguous arrays, so a contiguous input is passed as it is and any
other view is copied once (global pools also read channels-last views in place). All
outputs come from the core's buffer cache, allocated with the GIL held (a forward pass
allocates its own in the same call); the loops run with it released. Max/min keep their winners as compact kernel offsets (one byte for
windows of up to 256 cells, two up to 65536) unless flat int64 indices are asked
for.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .. import _core
from .._window import Axis

name = "compiled"
available = hasattr(_core, "reduce")


def _empty(shape, dtype) -> np.ndarray:
    """An uninitialised array from the core's buffer cache (see src/core/pool.hpp)."""
    dtype = np.dtype(dtype)
    # the view gives NumPy's own dtype object (the exported one may be an equivalent twin)
    return _core.empty([int(n) for n in shape], dtype.kind, dtype.itemsize).view(dtype)


def _factors(divisor) -> tuple:
    """The per-dim divisor factors as the core reads them. The ops layer's factors
    (``_ops._divisors``) are contiguous float64 already and pass as they are (each
    conversion costs microseconds once caches are cold); the core's argument caster
    converts any other array itself."""
    return divisor if type(divisor) is tuple else tuple(divisor)


def _geometry(axes: Sequence[Axis], spatial):
    """The core's Plan of ``axes`` over ``spatial``: parsed once per window and size,
    except for per-plane (fractional) tables, which are drawn anew for every call."""
    key = (axes if type(axes) is tuple else tuple(axes),
           spatial if type(spatial) is tuple else tuple(spatial))
    plan = _plans.get(key)
    if plan is None:
        plan = _core.plan(tuple((a.first, a.count, a.skip, a.step, a.stride, int(n), a.kernel)
                                for a, n in zip(*key)))
        if all(a.first.shape[0] == 1 for a in axes):
            if len(_plans) >= MAX_PLANS:
                _plans.clear()
            _plans[key] = plan
    return plan


MAX_PLANS = 1024
_INT64 = np.dtype(np.int64)
_plans: dict = {}   # (axes, spatial) -> Plan; Axes hash by identity, Windows are cached


def _planes_lanes(x: np.ndarray, channels_last: bool):
    return (x.shape[0], x.shape[4]) if channels_last else (x.shape[0], 1)


def _winner_dtype(axes: Sequence[Axis], indices: str) -> np.dtype:
    """Compact kernel offsets where they fit in 16 bits, else flat int64 indices."""
    volume = int(np.prod([a.kernel for a in axes], dtype=object))
    if indices == "flat" or volume > 65536:
        return np.dtype(np.int64)
    return np.dtype(np.uint8 if volume <= 256 else np.uint16)


def reduce(x: np.ndarray, axes: Sequence[Axis], kind: str, *, channels_last: bool = False,
           divisor: Optional[np.ndarray] = None, indices: Optional[str] = None):
    """Window max / min / sum / mean; ``indices``: None, "flat" (int64) or "any"."""
    x = np.ascontiguousarray(x)
    winner = 0
    if indices is not None and kind in ("max", "min"):
        winner = _winner_dtype(axes, indices).itemsize
    y, arg = _core.reduce(x, _factors(divisor) if kind == "mean" else None,
                          "sum" if kind == "mean" else kind, channels_last,
                          _geometry(axes, x.shape[1:4]), winner)
    if y.dtype is not x.dtype:   # NumPy's own dtype object (the core's may be a twin)
        y = y.view(x.dtype)
    if winner == 8 and arg.dtype is not _INT64:
        arg = arg.view(_INT64)
    return y, arg


def global_reduce(x: np.ndarray, kind: str, keepdims: bool) -> Optional[np.ndarray]:
    """A global pool's forward (max / min / mean of each (N, C) plane) in one core call,
    reading ``x`` in place when it is C-contiguous or a channels-last view; None for any
    other strides or an empty ``x`` (the generic path copies or rejects those)."""
    y = _core.global_reduce(x, kind, keepdims)
    if y is not None and y.dtype is not x.dtype:
        y = y.view(x.dtype)
    return y


def scatter_indices(dy: np.ndarray, arg: np.ndarray, axes: Sequence[Axis], spatial, *,
                    channels_last: bool = False):
    """Max/min backward with first-winner ties, from compact offsets or flat indices."""
    dy = np.ascontiguousarray(dy)
    planes, lanes = _planes_lanes(dy, channels_last)
    dx = _empty((planes,) + tuple(spatial) + ((lanes,) if channels_last else ()), dy.dtype)
    if dx.size:
        _core.scatter(dy, np.ascontiguousarray(arg), dx, planes, lanes, _geometry(axes, spatial))
    return dx


def spread(dy: np.ndarray, axes: Sequence[Axis], spatial, divisor, *, channels_last=False):
    """Mean backward: each window's ``dy / divisor`` to all its in-bounds taps."""
    dy = np.ascontiguousarray(dy)
    planes, lanes = _planes_lanes(dy, channels_last)
    div = _factors(divisor)
    dx = _empty((planes,) + tuple(spatial) + ((lanes,) if channels_last else ()), dy.dtype)
    if dx.size:
        _core.spread(dy, div, dx, planes, lanes, _geometry(axes, spatial))
    return dx


def split_ties(x: np.ndarray, dy: np.ndarray, axes: Sequence[Axis], kind: str, *,
               channels_last=False):
    """Max/min backward with ``ties="split"``."""
    dy = np.ascontiguousarray(dy)
    x = np.ascontiguousarray(x, dtype=dy.dtype)
    planes, lanes = _planes_lanes(x, channels_last)
    dx = _empty(x.shape, dy.dtype)
    if dx.size:
        _core.split_ties(x, dy, dx, kind, planes, lanes, _geometry(axes, x.shape[1:4]))
    return dx


def unpool(x: np.ndarray, indices: np.ndarray, spatial, *, channels_last=False):
    """Zeros of size ``spatial`` with ``x`` written at the flat per-plane ``indices``."""
    if channels_last:
        raise NotImplementedError("the core unpools channels-first planes; the ops layer "
                                  "hands it channels-last input transposed")
    x = np.ascontiguousarray(x)
    index = np.ascontiguousarray(indices, dtype=np.int64)
    y = _empty((x.shape[0],) + tuple(spatial), x.dtype)
    if y.size:
        _core.unpool(x, index, y, x.shape[0], int(np.prod(x.shape[1:])), int(np.prod(spatial)))
    return y


def unpool_backward(dy: np.ndarray, indices: np.ndarray, *, channels_last=False):
    """Gradient of max-unpooling with respect to its input."""
    if channels_last:
        raise NotImplementedError("the core unpools channels-first planes; the ops layer "
                                  "hands it channels-last input transposed")
    dy = np.ascontiguousarray(dy)
    index = np.ascontiguousarray(indices, dtype=np.int64)
    dx = _empty(index.shape, dy.dtype)
    if dx.size:
        _core.unpool_backward(dy, index, dx, dy.shape[0], int(np.prod(index.shape[1:])),
                              int(np.prod(dy.shape[1:])))
    return dx


# ------------------------------------------------------------- median and RoI pooling
def median(x: np.ndarray, axes: Sequence[Axis], *, indices: bool = False):
    """Lower median of each window's in-bounds taps; with ``indices`` its cell (the
    first in scan order holding the median) as flat per-plane int64 indices."""
    x = np.ascontiguousarray(x)
    out = (x.shape[0],) + tuple(a.out for a in axes)
    y = _empty(out, x.dtype)
    index = _empty(out, np.int64) if indices else None
    _core.median_pool(x, tuple((a.first[0], a.count[0], a.step) for a in axes), y, index)
    return y, index


def roi_align(x, corners, image, size, scale, sampling_ratio, aligned):
    """RoIAlign of (N, C, H, W) ``x`` over the (K, 4) ``corners`` of images ``image``."""
    y = _empty((len(image), x.shape[1]) + tuple(size), x.dtype)
    _core.roi_align(x, corners, image, scale, sampling_ratio, aligned, y)
    return y


def roi_align_backward(dy, corners, image, size, scale, sampling_ratio, aligned, shape):
    dx = _empty(shape, dy.dtype)
    _core.roi_align_backward(np.ascontiguousarray(dy), corners, image, scale, sampling_ratio,
                             aligned, dx)
    return dx


def roi_pool(x, corners, image, size, scale):
    """RoIPool of (N, C, H, W) ``x``: the output and each bin's winner (flat in its
    plane, -1 for an empty bin)."""
    shape = (len(image), x.shape[1]) + tuple(size)
    y, argmax = _empty(shape, x.dtype), _empty(shape, np.int64)
    _core.roi_pool(x, corners, image, scale, y, argmax)
    return y, argmax


def roi_pool_backward(dy, argmax, image, shape):
    dx = _empty(shape, dy.dtype)
    _core.roi_pool_backward(np.ascontiguousarray(dy), argmax, image, dx)
    return dx
def soft_pool(x: np.ndarray, logits: Optional[np.ndarray], axes: Sequence[Axis], *,
              channels_last=False):
    """Softmax-weighted window means (SoftPool when ``logits`` is None)."""
    x = np.ascontiguousarray(x)
    logits = None if logits is None else np.ascontiguousarray(logits, dtype=x.dtype)
    shape = (x.shape[0],) + tuple(a.out for a in axes) + ((x.shape[4],) if channels_last else ())
    y = _empty(shape, x.dtype)
    _core.soft_forward(x, logits, y, channels_last, _geometry(axes, x.shape[1:4]))
    return y


def soft_pool_backward(x: np.ndarray, logits: Optional[np.ndarray], dy: np.ndarray,
                       axes: Sequence[Axis], *, channels_last=False):
    """``(dx, dlogits)`` of ``soft_pool``; ``(dx, None)`` for SoftPool."""
    x = np.ascontiguousarray(x)
    dy = np.ascontiguousarray(dy, dtype=x.dtype)
    logits = None if logits is None else np.ascontiguousarray(logits, dtype=x.dtype)
    dx = _empty(x.shape, x.dtype)
    dlogits = None if logits is None else _empty(x.shape, x.dtype)
    _core.soft_backward(x, logits, dy, dx, dlogits, channels_last,
                        _geometry(axes, x.shape[1:4]))
    return dx, dlogits
