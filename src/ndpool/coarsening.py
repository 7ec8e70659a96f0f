"""Block reductions: ``coarsen`` reduces non-overlapping blocks of any axes, for NumPy,
Dask, xarray and ``__dlpack__`` input such as torch tensors (array type in = array type
out).

Max, min, sums and float means are pooling with kernel = stride = factor and
``ceil_mode`` (a partial end block is a window cut by the edge, averaged over its
in-bounds cells); integer sums and means, median and mode use the core's block
selection kernels (src/core/select.cpp).
"""
from __future__ import annotations

import math
import numbers
from typing import Dict, Optional, Tuple

import numpy as np

from . import _core
from ._arguments import FLOAT_TYPES, INT_TYPES, MAX_SIZE, choice, flag
from ._errors import fail, type_fail
from ._threads import block_threads, capped
from .arrays import dlpack, is_dask, is_dlpack, is_xarray

OPS = ("mean", "sum", "max", "min", "median", "mode")
BOUNDARIES = ("exact", "trim", "pad")
NAME = "coarsen"


def coarsen(x, factors, op="mean", *, boundary="exact", skipna=False, dtype=None):
    """Reduce each block of ``factors`` cells to one: NumPy, Dask, xarray or any
    ``__dlpack__`` array (a torch tensor) in, the same type out.

    >>> import numpy as np, ndpool
    >>> x = np.arange(24.0).reshape(4, 6)
    >>> ndpool.coarsen(x, 2)
    array([[ 3.5,  5.5,  7.5],
           [15.5, 17.5, 19.5]])
    >>> ndpool.coarsen(x, {1: 4}, "max", boundary="pad")      # a partial block at the end
    array([[ 3.,  5.],
           [ 9., 11.],
           [15., 17.],
           [21., 23.]])
    >>> ndpool.coarsen(np.array([[1, 2], [2, 4]], np.uint8), 2)  # 2.25 rounds to 2
    array([[2]], dtype=uint8)

    ``factors``: an int (every axis), a tuple (one per axis, 1 leaves an axis alone) or
    a dict ``{axis or xarray dim name: factor}``. ``op``: ``"mean"``, ``"sum"``,
    ``"max"``, ``"min"``, ``"median"`` or ``"mode"``. ``boundary``: ``"exact"`` (a size
    that the factor does not divide is an error), ``"trim"`` (drop the partial block) or
    ``"pad"`` (keep it, reduce its in-bounds cells: size ``ceil(n / f)``).

    dtypes: float input keeps its dtype in every op. Integer input keeps its dtype for
    max, min, median, mode and the mean (rounded half to even) unless ``dtype`` asks for
    another (a float ``dtype`` gives the unrounded mean); a sum of integers is int64.
    The median of floats is NumPy's (the mean of the two middle values), of integers
    the lower middle value; the mode is the most frequent value, ties to the smallest.
    A NaN makes its block NaN unless ``skipna=True``, which ignores NaN in every op (a
    block of NaN alone stays NaN, for the sum too). xarray input keeps its dims, name
    and attrs; coarsened coordinates are the mean of each block's coordinate values.
    """
    if type(x) is not np.ndarray and is_dlpack(x):   # a torch tensor in, one out
        return dlpack.apply(NAME, coarsen, x, factors, op, boundary=boundary,
                            skipna=skipna, dtype=dtype)
    op = choice(NAME, "op", op, OPS)
    boundary = choice(NAME, "boundary", boundary, BOUNDARIES)
    skipna = flag(NAME, "skipna", skipna)
    if is_xarray(x):
        return _coarsen_xarray(x, factors, op, boundary, skipna, dtype)
    x = _input(x)
    sizes = _factors(factors, x.ndim, None)
    out_type = _out_dtype(op, x.dtype, dtype)
    x = _bounded(x, sizes, boundary)
    if is_dask(x):
        return _coarsen_dask(x, sizes, op, skipna, out_type)
    return reduce_blocks(x, sizes, op, skipna, out_type)


# ------------------------------------------------------------------ the arguments
def _input(x):
    if is_dask(x):
        array = x
    else:
        if isinstance(x, (str, bytes)):
            type_fail(NAME, f"x must be an array, got {type(x).__name__}")
        array = np.asarray(x)
    if array.dtype.type not in FLOAT_TYPES + INT_TYPES:
        type_fail(NAME, f"x has dtype {array.dtype}, which is not supported; use a float or "
                  f"integer dtype", "convert booleans with x.astype(np.uint8)"
                  if array.dtype == bool else None)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def _factors(factors, ndim: int, dims: Optional[Tuple[str, ...]]) -> Tuple[int, ...]:
    """One factor per axis; dict keys are axis indices or (for xarray) dim names."""
    def checked(key, value):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            type_fail(NAME, f"factors={factors!r}: the factor of axis {key!r} must be an int")
        if not 1 <= value <= MAX_SIZE:
            fail(NAME, f"factors={factors!r}: the factor of axis {key!r} must be at least 1")
        return int(value)

    if isinstance(factors, dict):
        out = [1] * ndim
        for key, value in factors.items():
            if isinstance(key, str) and dims is not None and key in dims:
                axis = dims.index(key)
            elif isinstance(key, numbers.Integral) and not isinstance(key, bool) and -ndim <= key < ndim:
                axis = int(key) % ndim
            else:
                named = f" or one of the dims {dims}" if dims is not None else ""
                fail(NAME, f"factors={factors!r} names axis {key!r}, which is not an axis "
                     f"index of an array of {ndim} dims{named}")
            out[axis] = checked(key, value)
        return tuple(out)
    if isinstance(factors, (tuple, list)):
        if len(factors) != ndim:
            fail(NAME, f"factors={factors!r} must have {ndim} entries, one per axis")
        return tuple(checked(axis, f) for axis, f in enumerate(factors))
    return (checked("(every)", factors),) * ndim


def _out_dtype(op: str, dtype: np.dtype, asked) -> np.dtype:
    if asked is not None:
        try:
            asked = np.dtype(asked)
        except TypeError as error:
            type_fail(NAME, f"dtype={asked!r} is not a dtype ({error})")
        if asked.type not in FLOAT_TYPES + INT_TYPES:
            type_fail(NAME, f"dtype={asked} is not supported; use a float or integer dtype")
        return asked
    if op == "sum" and dtype.kind in "iu":
        return np.dtype(np.int64)
    return dtype


def _bounded(x, factors, boundary: str):
    """``x`` cut to whole blocks ("trim"), checked ("exact"), or as it is ("pad")."""
    keep = []
    for axis, (n, f) in enumerate(zip(x.shape, factors)):
        if n % f and boundary == "exact":
            fail(NAME, f"axis {axis} has size {n}, which factor {f} does not divide",
                 "use boundary='trim' to drop the partial block or 'pad' to keep it")
        keep.append(slice(0, n - n % f) if boundary == "trim" else slice(None))
    return x[tuple(keep)] if boundary == "trim" else x


# -------------------------------------------------------------- NumPy blocks
def reduce_blocks(x: np.ndarray, factors: Tuple[int, ...], op: str, skipna: bool,
                  out_type: np.dtype) -> np.ndarray:
    """Every block of ``x`` reduced, partial end blocks over their in-bounds cells."""
    axes = tuple(a for a, f in enumerate(factors) if f > 1)
    if not axes or x.size == 0:
        shape = tuple(-(-n // f) for n, f in zip(x.shape, factors))
        if x.size == 0:
            return np.zeros(shape, out_type)
        return x.astype(out_type)   # blocks of one cell: every op is the cell itself
    if op in ("median", "mode"):
        return _select(x, axes, factors, op, skipna).astype(out_type, copy=False)
    if op in ("max", "min"):
        return _extreme(x, axes, factors, op, skipna).astype(out_type, copy=False)
    if x.dtype.kind in "iu":
        return _integer_mean_or_sum(x, axes, factors, op, out_type)
    return _float_mean_or_sum(x, axes, factors, op, skipna, out_type)


def _pool(x, op: str, axes, factors):
    from .functional import pool
    k = tuple(factors[a] for a in axes)
    return pool(x, op, k, k, ceil_mode=True, axes=axes)


def _extreme(x, axes, factors, op, skipna):
    """Max and min through the pooling core (where a NaN wins its window); with skipna,
    NaN is the identity instead, and blocks of NaN alone put it back."""
    if not skipna or x.dtype.kind != "f":
        return _pool(x, op, axes, factors)
    nan = np.isnan(x)
    if not nan.any():
        return _pool(x, op, axes, factors)
    fill = -np.inf if op == "max" else np.inf
    best = _pool(np.where(nan, fill, x).astype(x.dtype), op, axes, factors)
    return np.where(_all_nan(nan, axes, factors), np.nan, best).astype(x.dtype)


def _all_nan(nan: np.ndarray, axes, factors) -> np.ndarray:
    """Blocks whose cells are all NaN: the min of the NaN mask is 1 there."""
    return _pool(nan.view(np.uint8), "min", axes, factors).astype(bool)


def _cells(shape, axes, factors) -> np.ndarray:
    """In-bounds cells of each block (partial end blocks count their own), broadcastable."""
    count = np.ones((1,) * len(shape), dtype=np.int64)
    for a in axes:
        n, f = shape[a], factors[a]
        sizes = np.minimum(f, n - np.arange(0, n, f))
        count = count * sizes.reshape([-1 if d == a else 1 for d in range(len(shape))])
    return count


def _float_mean_or_sum(x, axes, factors, op, skipna, out_type):
    """Float sums and means: the pooling core's window sums, ceil_mode averaging the
    in-bounds cells of a partial block; skipna divides by the cells that are not NaN."""
    work = out_type if out_type.kind == "f" and out_type.itemsize > x.dtype.itemsize else x.dtype
    x = x.astype(work, copy=False)
    nan = np.isnan(x) if skipna else None
    if nan is None or not nan.any():
        return _pool(x, "avg" if op == "mean" else "sum", axes, factors).astype(out_type, copy=False)
    acc = np.float32 if work == np.float16 else work
    total = _pool(np.where(nan, 0, x).astype(acc), "sum", axes, factors)
    if op == "sum":
        return np.where(_all_nan(nan, axes, factors), np.nan, total).astype(out_type)
    valid = _cells(x.shape, axes, factors) - _pool(nan.astype(acc), "sum", axes, factors)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / valid).astype(out_type)      # 0 / 0: an all-NaN block is NaN


def _integer_mean_or_sum(x, axes, factors, op, out_type):
    """Exact int64 block sums from the core; the mean rounded half to even in integers,
    or divided in floats when a float ``dtype`` asks for the unrounded mean."""
    total = _select(x, axes, factors, "sum", False)
    if op == "sum":
        return total.astype(out_type, copy=False)
    cells = _cells(x.shape, axes, factors)
    if out_type.kind == "f":
        return (total / cells).astype(out_type)
    quotient, remainder = np.divmod(total, cells)   # floor division: 0 <= remainder < cells
    up = (2 * remainder > cells) | ((2 * remainder == cells) & (quotient % 2 == 1))
    return (quotient + up).astype(out_type)


def _select(x, axes, factors, kind: str, skipna: bool) -> np.ndarray:
    """The core's block selection over ``axes``: the rest become planes, and back."""
    if len(axes) > 7:
        fail(NAME, f"{kind} coarsens at most 7 axes at once, got {len(axes)}")
    last = tuple(range(x.ndim - len(axes), x.ndim))
    moved = np.moveaxis(x, axes, last)
    lead = moved.shape[:x.ndim - len(axes)]
    planes = np.ascontiguousarray(moved.reshape((math.prod(lead),) + moved.shape[len(lead):]))
    y = _core.block_select(planes, [factors[a] for a in axes], kind, skipna)
    y = y.view(np.int64 if kind == "sum" else x.dtype)   # NumPy's own dtype object (the
    # core's may be an equivalent twin, which prints as a different type)
    return np.moveaxis(y.reshape(lead + y.shape[1:]), last, axes)


# ------------------------------------------------------------------------ Dask
def _coarsen_dask(x, factors, op, skipna, out_type):
    """Chunks realigned to whole blocks, then every chunk reduced on its own."""
    import dask.array as da
    from .arrays.dask import known_chunks
    known_chunks(NAME, x)
    aligned = x.rechunk(tuple(_aligned(c, f) for c, f in zip(x.chunks, factors)))
    chunks = tuple(tuple(-(-c // f) for c in cs) for cs, f in zip(aligned.chunks, factors))
    threads = block_threads.current()
    return da.map_blocks(_dask_block, aligned, factors=factors, op=op, skipna=skipna,
                         out_type=out_type, threads=threads, chunks=chunks,
                         meta=np.empty((0,) * x.ndim, out_type))


def _aligned(chunks: Tuple[int, ...], factor: int) -> Tuple[int, ...]:
    """Chunk sizes whose ends fall on multiples of ``factor`` (the last may be partial)."""
    if factor == 1:
        return chunks
    size = sum(chunks)
    ends = sorted({min(size, max(factor, round(e / factor) * factor))
                   for e in np.cumsum(chunks).tolist()} | {size})
    return tuple(np.diff([0] + ends).tolist())


def _dask_block(block, factors, op, skipna, out_type, threads):
    with capped(threads):
        return reduce_blocks(block, factors, op, skipna, out_type)


# ---------------------------------------------------------------------- xarray
def _coarsen_xarray(x, factors, op, boundary, skipna, dtype):
    """The data coarsened as above; dims, name and attrs kept; coordinates along the
    coarsened dims become the mean of each block's values (datetimes too)."""
    import xarray as xr
    sizes = _factors(factors, x.ndim, tuple(x.dims))
    data = coarsen(x.data, sizes, op, boundary=boundary, skipna=skipna, dtype=dtype)
    by_dim = dict(zip(x.dims, sizes))
    coords = {}
    for name, coord in x.coords.items():
        own = tuple(by_dim.get(d, 1) for d in coord.dims)
        if all(f == 1 for f in own):
            coords[name] = coord.variable
            continue
        coords[name] = xr.Variable(coord.dims, _coord_mean(name, coord.values, own, boundary),
                                   coord.attrs)
    return xr.DataArray(data, coords=coords, dims=x.dims, name=x.name, attrs=dict(x.attrs))


def _coord_mean(name, values: np.ndarray, factors, boundary):
    if values.dtype.kind == "M":   # datetimes: the mean of their int64 ticks
        ticks = values.astype(np.int64).astype(np.float64)
        mean = coarsen(ticks, factors, "mean", boundary=boundary)
        return np.round(mean).astype(np.int64).astype(values.dtype)
    if values.dtype.kind not in "iuf":
        type_fail(NAME, f"coordinate {name!r} has dtype {values.dtype}; only numeric and "
                  "datetime coordinates along a coarsened dim can be averaged",
                  "drop it first with x.drop_vars(...)")
    return coarsen(values.astype(np.float64), factors, "mean", boundary=boundary)
