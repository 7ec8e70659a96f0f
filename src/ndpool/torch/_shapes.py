"""Output shapes of the bridged ops, from the NumPy ops' own argument checks and Window
geometry, so that fake tensors get the sizes the core will produce without a pool run."""
from __future__ import annotations

from typing import Tuple

import numpy as np

from ..functional import _ops
from .._arguments import flag, int_tuple
from .._errors import fail
from .._layout import Layout, layout_for
from .._window import adaptive_window, stride_or_kernel


def _restored(lay: Layout, out_size) -> Tuple[int, ...]:
    """The caller's shape of a result with spatial size ``out_size`` (``Layout.restore``)."""
    if lay.channels_last:
        return ((lay.batch,) if lay.batched else ()) + tuple(out_size) + (lay.channels,)
    return lay.lead + tuple(out_size)


def _sliding(op, rank, shape, kwargs, count_include_pad=False):
    dummy = np.broadcast_to(np.empty((), np.float32), shape)   # a shape, no memory
    keys = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
    lay, win = _ops._sliding(op, dummy, rank, *(kwargs.get(k, d) for k, d in zip(
        keys, (None, None, 0, 1, False))), count_include_pad, kwargs.get("layout",
                                                                         "channels_first"))
    return _restored(lay, win.out_size)


def _adaptive(op, rank, shape, kwargs):
    lay = layout_for(op, shape, rank, kwargs.get("layout", "channels_first"))
    out = _ops._output_size(op, kwargs["output_size"], lay)
    return _restored(lay, adaptive_window(lay.spatial, out).out_size)


def _unpool(op, rank, shape, kwargs):
    lay = layout_for(op, shape, rank, kwargs.get("layout", "channels_first"))
    kernel = int_tuple(op, "kernel_size", kwargs["kernel_size"], rank)
    strides = stride_or_kernel(op, kwargs.get("stride"), rank, kernel)
    pads = int_tuple(op, "padding", kwargs.get("padding", 0), rank, minimum=0)
    return _restored(lay, _ops._unpool_size(op, lay, kernel, strides, pads,
                                            kwargs.get("output_size")))


def _fractional(op, rank, shape, kwargs):
    lay = layout_for(op, shape, rank, kwargs.get("layout", "channels_first"))
    kernel = int_tuple(op, "kernel_size", kwargs["kernel_size"], rank)
    return _restored(lay, _ops._fractional_size(op, lay, kernel, kwargs.get("output_size"),
                                                kwargs.get("output_ratio")))


def _global(op, shape, kwargs):
    if len(shape) < 3:
        fail(op, f"x must have shape (N, C, *spatial) with at least one spatial dim, "
                  f"got shape {shape}")
    keepdims = flag(op, "keepdims", kwargs.get("keepdims", False))
    if kwargs.get("layout", "channels_first") == "channels_last":
        return shape[:1] + ((1,) * (len(shape) - 2) if keepdims else ()) + shape[-1:]
    return shape[:2] + ((1,) * (len(shape) - 2) if keepdims else ())


def output_shape(name: str, shape: Tuple[int, ...], kwargs: dict) -> Tuple[int, ...]:
    """The shape of ``ndpool.<name>(x, **kwargs)`` for ``x`` of ``shape``, as the
    channels-first caller sees it (the bridge turns channels-last memory into views)."""
    if name.startswith("global_"):
        return _global(name, shape, kwargs)
    rank = int(name[-2])
    if name.startswith("fractional_"):
        return _fractional(name, rank, shape, kwargs)
    if name.startswith("max_unpool"):
        return _unpool(name, rank, shape, kwargs)
    if name.startswith("adaptive_"):
        return _adaptive(name, rank, shape, kwargs)
    if name.startswith("avg_pool"):
        return _sliding(name, rank, shape, kwargs, kwargs.get("count_include_pad", True))
    if name.startswith("lp_pool"):
        return _sliding(name, rank, shape, kwargs, True)
    return _sliding(name, rank, shape, kwargs)
