"""What median pooling and region-of-interest pooling mean: validate, build the geometry,
call the backend, and the pullbacks (gradients for ``x`` only; boxes get none).

Median pooling shares the sliding Window of max pooling (its tap tables are the one
truth); RoIPool and RoIAlign follow torchvision.ops' C++ kernels, whose per-box geometry
the backends compute from the boxes (see docs/median-roi.md for the rules).
"""
from __future__ import annotations

import functools
import math
import numbers

import numpy as np

from .. import backends
from .._arguments import as_input, flag, int_tuple, is_int
from .._errors import fail, type_fail
from .._layout import Layout, axes3, spatial3
from .._window import Window
from ..arrays import is_dask
from ._ops import _as_float, _checked_dy, _lazily, _pullback, _sliding


# ------------------------------------------------------------------ median pooling
def median_pool(op: str, rank: int, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                return_indices=False, *, grad=False):
    """The lower median of each window's in-bounds cells, its cell's flat per-plane index
    (among equal cells, the one a stable sort puts at the median's place, as
    torch.median; a NaN wins, the first one), and the gradient to that cell."""
    x = as_input(op, x, integers=True)
    lay, win = _sliding(op, x, rank, kernel_size, stride, padding, 1, ceil_mode, False)
    return _median(op, x, lay, win, flag(op, "return_indices", return_indices), grad)


def _median(op, x, lay: Layout, win: Window, return_indices: bool, grad: bool):
    if is_dask(x):
        execute = functools.partial(_median, op, return_indices=return_indices)
        return _lazily(op, execute, x, lay, win, grad, indices=return_indices)
    backend = backends.current()
    x3, axes = lay.canonical(x), axes3(win)
    y3, idx3 = backend.median(x3, axes, indices=return_indices or grad)
    y = lay.restore(y3, win.out_size)
    result = (y, lay.restore(idx3, win.out_size)) if return_indices else y
    if not grad:
        return result, None
    spatial = spatial3(lay.spatial)
    rule = lambda dy3: backend.scatter_indices(dy3, idx3, axes, spatial)
    return result, _pullback(op, y, x, lay, rule)


# ---------------------------------------------------------------- region pooling
#: RoIAlign's bilinear samples per box and channel are bounded (an adaptive grid over a
#: box millions of cells wide would run for hours)
MAX_SAMPLES = 2**28
#: box coordinates, once scaled, stay within this (sample positions keep their meaning
#: in float32 and the quantised RoIPool corners fit an int)
MAX_COORDINATE = 2.0**24


def _accumulator(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float64 if dtype == np.float64 else np.float32)


def _feature_map(op: str, x) -> np.ndarray:
    x = as_input(op, x, integers=False)
    if is_dask(x):
        type_fail(op, "x is a Dask array; RoI pooling takes NumPy arrays",
                  "compute the feature map first")
    if x.ndim != 4:
        fail(op, f"x must have 4 dims (N, C, H, W), got shape {x.shape}")
    if x.shape[2] == 0 or x.shape[3] == 0:
        fail(op, f"x has an empty spatial dim, shape {x.shape}")
    return x


def _box_table(op: str, boxes):
    """``boxes`` as (K, 5) rows (image, x1, y1, x2, y2): from a (K, 5) array, or from a
    list of (Ki, 4) arrays, one per image (torchvision's two forms)."""
    if isinstance(boxes, (list, tuple)):
        parts = []
        for i, item in enumerate(boxes):
            part = _numeric(op, f"boxes[{i}]", item)
            if part.ndim != 2 or part.shape[1] != 4:
                fail(op, f"boxes[{i}] must have shape (Ki, 4) (x1, y1, x2, y2), got shape "
                     f"{part.shape}")
            parts.append(np.concatenate([np.full((len(part), 1), i, np.float64),
                                         part.astype(np.float64)], axis=1))
        return np.concatenate(parts) if parts else np.zeros((0, 5)), "boxes[i] is image i"
    table = _numeric(op, "boxes", boxes)
    if table.ndim != 2 or table.shape[1] != 5:
        fail(op, f"boxes must have shape (K, 5) (image, x1, y1, x2, y2), or be a list of "
             f"(Ki, 4) arrays, one per image; got shape {table.shape}")
    return table, "column 0 is the image"


def _numeric(op: str, name: str, value) -> np.ndarray:
    if isinstance(value, (str, bytes)) or value is None:
        type_fail(op, f"{name} must be an array of boxes, got {type(value).__name__}")
    try:
        array = np.asarray(value)
    except Exception as error:  # ragged lists
        type_fail(op, f"{name} could not be read as an array ({error})")
    if array.dtype.kind not in "fiu":
        type_fail(op, f"{name} has dtype {array.dtype}; use a float or integer dtype")
    return array


def _boxes(op: str, boxes, x: np.ndarray, spatial_scale: float):
    """The boxes checked: (K, 4) corners in the accumulator type (the input's dtype first,
    as torchvision requires boxes of x's dtype) and the (K,) int64 image of each."""
    table, rule = _box_table(op, boxes)
    if not np.isfinite(table).all():
        fail(op, "boxes must be finite")
    image = table[:, 0]
    if (image != np.floor(image)).any():
        fail(op, f"a box's image index {float(image[image != np.floor(image)][0])!r} is not an "
             f"integer ({rule})")
    if len(image) and (image.min() < 0 or image.max() >= x.shape[0]):
        bad = image.min() if image.min() < 0 else image.max()
        fail(op, f"a box's image index {int(bad)} is out of range for x with "
             f"{x.shape[0]} images ({rule})")
    corners = table[:, 1:].astype(x.dtype).astype(_accumulator(x.dtype))
    if len(corners) and np.abs(corners.astype(np.float64)).max() * spatial_scale > MAX_COORDINATE:
        fail(op, f"box coordinates times spatial_scale={spatial_scale!r} must lie within "
             f"+-{MAX_COORDINATE:.0f}")
    return np.ascontiguousarray(corners), np.ascontiguousarray(image.astype(np.int64))


def _roi_arguments(op: str, output_size, spatial_scale):
    size = int_tuple(op, "output_size", output_size, 2)
    if math.prod(size) > 2**31 - 1:
        fail(op, f"output_size={output_size!r} has more than {2**31 - 1} bins")
    if (not isinstance(spatial_scale, numbers.Real) or isinstance(spatial_scale, bool)):
        type_fail(op, f"spatial_scale={spatial_scale!r} must be a number")
    if not (math.isfinite(_as_float(spatial_scale)) and spatial_scale > 0):
        fail(op, f"spatial_scale={spatial_scale!r} must be a positive finite number")
    return size, float(spatial_scale)


def _roi_pullback(op: str, y: np.ndarray, x: np.ndarray, backward):
    def pullback(dy):
        dy = _checked_dy(op, dy, y.shape)
        return backward(np.ascontiguousarray(dy.astype(x.dtype, copy=False)))
    return pullback


def roi_pool(x, boxes, output_size, spatial_scale=1.0, *, grad=False):
    """RoIPool (Girshick 2015) with torchvision's rules: box corners rounded to cells,
    each of the ``output_size`` bins the max of its cells (an empty bin is 0)."""
    op = "roi_pool"
    x = _feature_map(op, x)
    size, scale = _roi_arguments(op, output_size, spatial_scale)
    corners, image = _boxes(op, boxes, x, scale)
    backend = backends.current()
    y, argmax = backend.roi_pool(np.ascontiguousarray(x), corners, image, size, scale)
    if not grad:
        return y, None
    rule = lambda dy: backend.roi_pool_backward(dy, argmax, image, x.shape)
    return y, _roi_pullback(op, y, x, rule)


def roi_align(x, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False, *,
              grad=False):
    """RoIAlign (He et al. 2017) with torchvision's rules: each bin the mean of bilinear
    samples on a ``sampling_ratio`` square grid (adaptive: ceil(box size / bins))."""
    op = "roi_align"
    x = _feature_map(op, x)
    size, scale = _roi_arguments(op, output_size, spatial_scale)
    if not is_int(sampling_ratio):
        type_fail(op, f"sampling_ratio={sampling_ratio!r} must be an int (<= 0: adaptive)")
    aligned = flag(op, "aligned", aligned)
    ratio = max(int(sampling_ratio), 0)   # every ratio <= 0 means the adaptive grid
    corners, image = _boxes(op, boxes, x, scale)
    _check_samples(op, corners, size, scale, ratio, aligned)
    backend = backends.current()
    args = (image, size, scale, ratio, aligned)
    y = backend.roi_align(np.ascontiguousarray(x), corners, *args)
    if not grad:
        return y, None
    rule = lambda dy: backend.roi_align_backward(dy, corners, *args, x.shape)
    return y, _roi_pullback(op, y, x, rule)


def _check_samples(op, corners, size, scale, sampling_ratio, aligned):
    """Refuse boxes whose sample grid would be beyond reason (see MAX_SAMPLES)."""
    if not len(corners):
        return
    if sampling_ratio > 0:
        grid = np.full((len(corners), 2), float(sampling_ratio))
    else:
        extent = (corners[:, 2:] - corners[:, :2]).astype(np.float64)[:, ::-1] * scale
        extent = extent if aligned else np.maximum(extent, 1.0)
        grid = np.maximum(np.ceil(extent / np.array(size, dtype=np.float64)), 0)
    samples = grid.prod(axis=1) * math.prod(size)
    if samples.max() > MAX_SAMPLES:
        k = int(samples.argmax())
        fail(op, f"box {k} takes {samples[k]:.0f} samples per channel, more than "
             f"{MAX_SAMPLES}", "give a smaller sampling_ratio")
