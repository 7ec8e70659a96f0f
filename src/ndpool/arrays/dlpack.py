"""Any CPU array with ``__dlpack__`` in, the same type out: PyTorch tensors, JAX arrays,
and any other library's arrays reach the NumPy ops as NumPy views of their memory
(``numpy.from_dlpack``, no copy), and the results (indices too) go back through the
caller's own ``from_dlpack``.

>>> import torch, ndpool
>>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
>>> y, idx = ndpool.max_pool2d(x, 2, return_indices=True)
>>> y
tensor([[[[ 5.,  7.],
          [13., 15.]]]])
>>> idx.dtype
torch.int64

The NumPy ops never write their input, so read-only exports (JAX's) are fine. A tensor
that tracks gradients is read through ``detach()``: its result carries no autograd
history (``ndpool.torch`` registers the ops with autograd). Arrays in device memory get
an error naming the device.
"""
from __future__ import annotations

import sys
from typing import Callable, Dict, Tuple

import numpy as np

from .._errors import fail, type_fail
from . import is_dlpack

# DLPack's DLDeviceType codes, as the error messages name them
_DEVICES = {1: "cpu", 2: "cuda", 3: "cuda_host", 4: "opencl", 7: "vulkan", 8: "metal",
            9: "vpi", 10: "rocm", 11: "rocm_host", 12: "ext_dev", 13: "cuda_managed",
            14: "oneapi", 15: "webgpu", 16: "hexagon", 17: "maia"}
# memory the CPU reads directly, which numpy.from_dlpack accepts
_HOST = (1, 3, 11, 13)
# the arguments of the ops that are arrays (everything else is a size, a word or a flag)
_ARRAYS = ("x", "indices", "samples", "logits", "boxes")
# the families whose kernels read (N, *spatial, C) memory directly: a channels-last
# tensor is handed to them as its channels-last view instead of being copied
_READS_CHANNELS_LAST = ("max_pool", "min_pool", "avg_pool", "lp_pool", "adaptive_max_pool",
                        "adaptive_avg_pool")

Importer = Callable[[np.ndarray], object]
_importers: Dict[type, Importer] = {}


def device_name(x) -> str:
    """The device of ``x`` as its library would write it, e.g. ``"cuda:0"``."""
    kind, index = x.__dlpack_device__()
    return f"{_DEVICES.get(int(kind), f'device type {int(kind)}')}:{int(index)}"


def importer(op: str, x) -> Importer:
    """The ``from_dlpack`` of the library whose array ``x`` is: its array-API namespace
    (JAX, and any library that follows the standard), else its top-level module's
    (PyTorch's ``torch.from_dlpack``). Found once per type."""
    kind = type(x)
    found = _importers.get(kind)
    if found is None:
        space = getattr(x, "__array_namespace__", None)
        module = space() if space is not None else sys.modules.get(
            kind.__module__.partition(".")[0])
        found = getattr(module, "from_dlpack", None)
        if found is None:
            type_fail(op, f"x is a {kind.__module__}.{kind.__qualname__}, whose library has "
                      f"no from_dlpack to return the result in",
                      "pass numpy.from_dlpack(x) to get NumPy arrays back")
        _importers[kind] = found
    return found


def to_numpy(op: str, argument: str, x) -> np.ndarray:
    """A NumPy view of the memory of ``x`` (never a copy), or a clear error."""
    if "Tracer" in type(x).__name__:   # JAX's values inside jax.jit, grad, vmap
        type_fail(op, f"{argument} is a traced JAX value ({type(x).__name__}), which has no "
                  f"memory for the NumPy API to read",
                  "call it on concrete arrays, outside jax.jit, jax.grad and jax.vmap")
    if not hasattr(x, "__dlpack_device__"):
        type_fail(op, f"{argument} ({type(x).__name__}) has __dlpack__ but no "
                  f"__dlpack_device__, so where its memory lies is unknown")
    kind, _ = x.__dlpack_device__()
    if int(kind) not in _HOST:
        fail(op, f"{argument} is on device {device_name(x)}, but ndpool computes on the CPU",
             "copy it to host memory first, e.g. x.cpu() in PyTorch")
    if getattr(x, "requires_grad", False):   # torch refuses to export it otherwise
        x = x.detach()
    try:
        return np.from_dlpack(x, copy=False)
    except (BufferError, RuntimeError, TypeError, ValueError) as error:
        type_fail(op, f"{argument} ({type(x).__name__}) could not be read through DLPack "
                  f"without a copy ({error})",
                  "ndpool takes float16, float32, float64 and integer arrays")


def _exported(result, back: Importer):
    """NumPy results in the caller's type (each array of a tuple)."""
    if isinstance(result, tuple):
        return tuple(_exported(r, back) for r in result)
    if isinstance(result, dict):   # the gradients of an op of several inputs, by name
        return {name: _exported(r, back) for name, r in result.items()}
    if not result.flags.writeable:   # DLPack exports of read-only arrays are refused
        result = result.copy()
    return back(result)


def call(op: str, impl, arguments: dict, grad: bool) -> Tuple[object, object]:
    """``impl(**arguments, grad=grad)`` on NumPy views of the DLPack arrays among
    ``arguments``; its results and pullback speak the type of ``arguments["x"]``."""
    back = importer(op, arguments["x"])
    views = {name: to_numpy(op, name, value) if name in _ARRAYS and is_dlpack(value) else value
             for name, value in arguments.items()}
    if _channels_last(op, views):
        return _through_channels_last(op, impl, views, grad, back)
    result, pullback = impl(**views, grad=grad)
    return _exported(result, back), _pullback(op, pullback, back, None, result)


def apply(op: str, function, x, *args, **kwargs):
    """``function(view of x, *args, **kwargs)`` with its result in the type of ``x``."""
    back = importer(op, x)
    return _exported(function(to_numpy(op, "x", x), *args, **kwargs), back)


# ------------------------------------------------------------ the pullback
def _pullback(op: str, pullback, back: Importer, move, result):
    """``pullback`` taking ``dy`` of any array type (a NumPy array, or anything with
    ``__dlpack__``) and giving ``dx`` in the caller's type; ``move`` is the pair of
    moves of the channels-last route, or None."""
    if pullback is None:
        return None
    y = result[0] if isinstance(result, tuple) else result
    shape = y.shape if move is None else move[1](y).shape

    def converted(dy):
        if is_dlpack(dy):
            dy = to_numpy(f"{op} pullback", "dy", dy)
        if move is not None:
            dy = np.asarray(dy)
            if dy.shape != shape:
                fail(f"{op} pullback", f"dy has shape {dy.shape} but the output has shape "
                     f"{shape}")
            return _exported(move[1](pullback(move[0](dy))), back)
        return _exported(pullback(dy), back)

    return converted


# ------------------------------------------------------- channels-last memory
def _channels_last(op: str, views: dict) -> bool:
    """Whether ``x`` is (N, C, *spatial) by shape but (N, *spatial, C) in memory (a
    channels-last torch tensor), for an op whose kernels read that memory directly."""
    if op[:-2] not in _READS_CHANNELS_LAST:
        return False
    x = views["x"]
    if views.get("layout", "channels_first") != "channels_first" or x.ndim != int(op[-2]) + 2:
        return False
    return not x.flags.c_contiguous and _to_last(x).flags.c_contiguous


def _to_last(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, 1, -1)


def _to_first(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, -1, 1)


def _through_channels_last(op: str, impl, views: dict, grad: bool, back: Importer):
    """The op on the (N, *spatial, C) view of ``x`` with ``layout="channels_last"``; the
    results come back as (N, C, *spatial) views of channels-last memory, as PyTorch
    returns them for channels-last input. Argument errors are those of the call as
    given: it is repeated on the channels-first view to raise them."""
    moved = dict(views, x=_to_last(views["x"]), layout="channels_last")
    if "padding" in views:
        moved["padding"] = _padding_to_last(views["padding"], int(op[-2]))
    try:
        result, pullback = impl(**moved, grad=grad)
    except (TypeError, ValueError):
        result, pullback = impl(**views, grad=grad)   # raises the caller's own error
        return _exported(result, back), _pullback(op, pullback, back, None, result)
    first = tuple(map(_to_first, result)) if isinstance(result, tuple) else _to_first(result)
    return _exported(first, back), _pullback(op, pullback, back, (_to_last, _to_first), result)


def _padding_to_last(padding, rank: int):
    """TensorFlow's ``rank + 2`` (before, after) pairs name the batch and channel dims
    too: reorder them from (N, C, *spatial) to (N, *spatial, C). Every other form of
    padding names the spatial dims only."""
    if isinstance(padding, np.ndarray):
        padding = padding.tolist()
    if (isinstance(padding, (tuple, list)) and len(padding) == rank + 2
            and all(isinstance(p, (tuple, list)) for p in padding)):
        rows = tuple(padding)
        return (rows[0],) + rows[2:] + (rows[1],)
    return padding
