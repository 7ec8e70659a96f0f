"""Dask arrays in, Dask arrays out: every op maps the in-memory op over blocks, lazily.

Each output block is a run of whole windows; its input block is the cells those windows
read, cut from the Window's own tables (``_window.output_spans``), so neighbouring
blocks overlap by the halo ``dilation*(kernel-1)+1-stride`` (or skip the cells no window
reads) and block edges fall where windows start, at multiples of the stride. A block
runs the in-memory op with the part of the Window it holds (``_window.part``): the same
taps and divisors, so max/min and their indices equal the in-memory result bit for bit.
A backward pass computes each input chunk's gradient from every window that reads the
chunk (``_window.input_spans``: dy with a halo of windows, x with a halo of cells), so
each cell gets all of its contributions in one block and no sums cross blocks.

Blocks run the compiled core with the GIL released on ``ndpool.block_threads()`` core
threads (one by default: Dask already runs one block per worker thread).
"""
from __future__ import annotations

import contextlib
import math
import operator
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import dask.array as da
import numpy as np
from dask.base import tokenize

from .. import backends
from .._arguments import FLOAT_TYPES
from .._errors import fail, type_fail
from .._threads import block_threads, capped
from .._window import Span, Window, input_spans, output_spans, part
from .._window import reach as _reach

# run(x_block, window_part, grad) -> (result, pullback): the in-memory op, its arguments fixed
Run = Callable[[np.ndarray, Window, bool], tuple]


@contextlib.contextmanager
def running(threads: int, backend):
    """How a block runs: on ``threads`` core threads, with the backend that was in force
    where its graph was built (None: the default), whichever thread the block runs on."""
    with capped(threads), (backends.use_backend(backend) if backend else contextlib.nullcontext()):
        yield


def known_chunks(op: str, x) -> None:
    if any(math.isnan(c) for chunks in x.chunks for c in chunks):
        fail(op, f"x has unknown chunk sizes {x.chunks}",
             "call x.compute_chunk_sizes() first")


def _bounds(chunks) -> np.ndarray:
    return np.cumsum((0,) + tuple(chunks))


def regroup(x, dim: int, ranges: Sequence[Tuple[int, int]]):
    """``x`` with chunk ``j`` along ``dim`` equal to ``x[lo_j:hi_j]`` (ranges may overlap
    or leave gaps); ``x`` itself when the ranges are its chunks."""
    bounds = _bounds(x.chunks[dim])
    if [tuple(r) for r in ranges] == list(zip(bounds[:-1].tolist(), bounds[1:].tolist())):
        return x
    index = (slice(None),) * dim
    pieces = [x[index + (slice(lo, hi),)].rechunk({dim: hi - lo}) for lo, hi in ranges]
    return da.concatenate(pieces, axis=dim)


@dataclass(frozen=True, eq=False)
class _Blocks:
    """What every block of one op needs: the op, its Window and how the Window is cut.

    ``dims`` are the array dims the Window's dims pool, in order; ``plane_dims`` the array
    dims whose cells are the planes of per-plane (fractional) tables, in order.
    """

    op: str
    run: Run
    window: Window
    dims: Tuple[int, ...]
    bounds: Tuple[Tuple[int, ...], ...]     # per array dim: 0, chunk ends ..., size
    out_spans: Tuple[Tuple[Span, ...], ...]
    in_spans: Tuple[Tuple[Span, ...], ...]
    plane_dims: Tuple[int, ...]
    threads: int
    indices: bool
    backend: Optional[str]

    def _spans(self, table, block_id):
        return [table[k][block_id[d]] for k, d in enumerate(self.dims)]

    def _rows(self, block_id) -> Optional[np.ndarray]:
        """The block's planes in per-plane tables (None when the tables are shared)."""
        if all(a.first.shape[0] == 1 for a in self.window.axes):
            return None
        ranges = [np.arange(self.bounds[d][block_id[d]], self.bounds[d][block_id[d] + 1])
                  for d in self.plane_dims]
        shape = tuple(self.bounds[d][-1] for d in self.plane_dims)
        return np.ravel_multi_index(np.ix_(*ranges), shape).ravel()

    def forward(self, block: np.ndarray, block_id=None):
        spans = self._spans(self.out_spans, block_id)
        with running(self.threads, self.backend):
            result, _ = self.run(block, part(self.window, spans, self._rows(block_id)), False)
        if not self.indices:
            return result
        y, local = result
        return y, self._global_indices(local, spans)

    def _global_indices(self, local: np.ndarray, spans: Sequence[Span]) -> np.ndarray:
        """Flat indices into the block's cells as flat indices into the whole plane."""
        cells = np.unravel_index(local, tuple(s.in_hi - s.in_lo for s in spans))
        moved = tuple(c + s.in_lo for c, s in zip(cells, spans))
        return np.ravel_multi_index(moved, self.window.in_size).astype(np.int64, copy=False)

    def backward(self, x_region: np.ndarray, dy_region: np.ndarray, block_id=None):
        spans = self._spans(self.in_spans, block_id)
        with running(self.threads, self.backend):
            _, pullback = self.run(x_region, part(self.window, spans, self._rows(block_id)),
                                   True)
            dx = pullback(dy_region)
        trim = [slice(None)] * dx.ndim
        for span, d in zip(spans, self.dims):
            lo, hi = self.bounds[d][block_id[d]], self.bounds[d][block_id[d] + 1]
            trim[d] = slice(lo - span.in_lo, hi - span.in_lo)
        return dx[tuple(trim)]

    def __dask_tokenize__(self):
        run = self.run
        described = (getattr(run, "func", run).__qualname__, getattr(run, "args", ()),
                     sorted(getattr(run, "keywords", {}).items()))
        w = self.window
        tables = [(a.first, a.count, a.skip, a.step, a.divisor) for a in w.axes]
        return (self.op, described, w.in_size, w.out_size, w.kernel, w.stride, w.dilation,
                tables, self.dims, self.bounds, self.threads, self.indices, self.backend)


def windowed(op: str, x, dims: Sequence[int], window: Window, run: Run, *, grad: bool,
             indices: bool = False, plane_dims: Sequence[int] = ()):
    """Pool Dask array ``x`` over its ``dims`` with ``window``: ``(result, pullback)`` as
    the ops layer returns them, every array in them lazy."""
    known_chunks(op, x)
    dims = tuple(d % x.ndim for d in dims)
    bounds = tuple(tuple(int(b) for b in _bounds(c)) for c in x.chunks)
    out_spans = tuple(output_spans(a, bounds[d]) for a, d in zip(window.axes, dims))
    in_spans = tuple(input_spans(a, bounds[d]) for a, d in zip(window.axes, dims))
    blocks = _Blocks(op, run, window, dims, bounds, out_spans, in_spans,
                     tuple(d % x.ndim for d in plane_dims), block_threads.current(), indices,
                     backends.chosen())
    token = tokenize(x.name, blocks)
    source = x
    for spans, d in zip(out_spans, dims):
        source = regroup(source, d, [(s.in_lo, s.in_hi) for s in spans])
    chunks = list(x.chunks)
    for spans, d in zip(out_spans, dims):
        chunks[d] = tuple(s.out_hi - s.out_lo for s in spans)
    empty = lambda dtype: np.empty((0,) * x.ndim, dtype=dtype)
    if indices:
        pairs = da.map_blocks(blocks.forward, source, chunks=tuple(chunks),
                              meta=empty(object), name=f"{op}-pairs-{token}")
        y = pairs.map_blocks(operator.itemgetter(0), meta=empty(x.dtype),
                             name=f"{op}-{token}")
        idx = pairs.map_blocks(operator.itemgetter(1), meta=empty(np.int64),
                               name=f"{op}-indices-{token}")
        result = (y, idx)
    else:
        y = da.map_blocks(blocks.forward, source, chunks=tuple(chunks), meta=empty(x.dtype),
                          name=f"{op}-{token}")
        result = y
    if not grad:
        return result, None

    def pullback(dy):
        dy = checked_dy(op, dy, y)
        work = x.dtype if x.dtype.kind == "f" else np.result_type(dy.dtype, np.float16)
        dy = dy.rechunk({d: x.chunks[d] for d in range(x.ndim) if d not in dims})
        x_regions, dy_regions = x, dy
        for spans, d in zip(in_spans, dims):
            x_regions = regroup(x_regions, d, [(s.in_lo, s.in_hi) for s in spans])
            dy_regions = regroup(dy_regions, d, [(s.out_lo, s.out_hi) for s in spans])
        return da.map_blocks(blocks.backward, x_regions, dy_regions, chunks=x.chunks,
                             meta=empty(work), name=f"{op}-grad-{tokenize(token, dy.name)}")

    return result, pullback


def checked_dy(op: str, dy, y):
    """``dy`` as a Dask array chunked as ``y`` along every dim it may keep, or a clear
    error; a NumPy ``dy`` is wrapped with ``y``'s chunks."""
    if not isinstance(dy, da.Array):
        dy = np.asarray(dy)
        if dy.shape == y.shape:
            dy = da.from_array(dy, chunks=y.chunks)
    if dy.shape != tuple(y.shape):
        fail(f"{op} pullback", f"dy has shape {dy.shape} but the output has shape {y.shape}")
    if dy.dtype.type not in FLOAT_TYPES and dy.dtype.kind not in "iu":
        type_fail(f"{op} pullback", f"dy has dtype {dy.dtype}; use a float dtype")
    known_chunks(f"{op} pullback", dy)
    return dy


# ------------------------------------------------------------------------ global pools
# A whole plane does not fit one block, so a global pool is a tree reduction (dask's
# `reduction`, split_every as dask chooses) of per-block partials that the core makes:
# a mean's (total, cells) and a max's or min's (value, flat index of its winner), the
# winner's index kept so that the backward pass can send dy to the in-memory winner.

def _whole_blocks(x, op: str, run, dtype, threads):
    """``run(block, threads, bounds, block_id)`` on every block, one partial per plane
    and block: shape (N, C, 1, ..., 1) per block."""
    chunks = x.chunks[:2] + tuple((1,) * len(c) for c in x.chunks[2:])
    how = (threads, backends.chosen())
    return da.map_blocks(run, x, threads=how, bounds=_all_bounds(x), chunks=chunks,
                         meta=np.empty((0,) * x.ndim, dtype=dtype),
                         name=f"{op}-partials-{tokenize(x.name, run, how)}")


def _all_bounds(x):
    return tuple(tuple(int(b) for b in _bounds(c)) for c in x.chunks)


_TOTAL = np.dtype([("total", np.float64), ("cells", np.int64)])


def _mean_partial(block, threads, bounds, block_id=None):
    from ..functional import global_avg_pool
    work = block.astype(np.float64)   # totals in float64: one rounding, at the end
    with running(*threads):
        mean = global_avg_pool(work, keepdims=True)
    cells = math.prod(block.shape[2:])
    out = np.empty(mean.shape, dtype=_TOTAL)
    out["total"], out["cells"] = mean.astype(np.float64) * cells, cells
    return out


def _mean_combine(partials, axis, keepdims=True, **_):
    out = np.empty(np.sum(partials["cells"], axis=axis, keepdims=keepdims).shape, _TOTAL)
    out["total"] = np.sum(partials["total"], axis=axis, keepdims=keepdims)
    out["cells"] = np.sum(partials["cells"], axis=axis, keepdims=keepdims)
    return out


def _winner_dtype(dtype):
    return np.dtype([("value", dtype), ("index", np.int64)])


def _winner_partial(block, threads, bounds, kind, block_id=None):
    """Each plane's winner in the block, its index flat in the whole plane. The block's
    scan order is the plane's, restricted, so its first winner (last NaN) is the
    plane's among the block's cells."""
    from ..functional import max_pool1d, min_pool1d
    planes = block.reshape(block.shape[:2] + (-1,))
    with running(*threads):
        pool = max_pool1d if kind == "max" else min_pool1d
        value, local = pool(planes, planes.shape[-1], return_indices=True)
    cells = np.unravel_index(local, block.shape[2:])
    starts = [bounds[d][block_id[d]] for d in range(2, block.ndim)]
    shape = tuple(b[-1] for b in bounds[2:])
    out = np.empty(block.shape[:2] + (1,) * (block.ndim - 2), dtype=_winner_dtype(block.dtype))
    out["value"] = value.reshape(out.shape)
    out["index"] = np.ravel_multi_index(tuple(c + s for c, s in zip(cells, starts)),
                                        shape).reshape(out.shape)
    return out


def _winner_combine(partials, axis, keepdims=True, kind="max", **_):
    """The winner among partials: any NaN wins (the last one), else the first extreme."""
    axis = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    keep = [d for d in range(partials.ndim) if d not in axis]
    order = keep + list(axis)
    moved = partials.transpose(order).reshape(tuple(partials.shape[d] for d in keep) + (-1,))
    value, index = moved["value"], moved["index"]
    best = value.max(axis=-1) if kind == "max" else value.min(axis=-1)
    first = np.where(value == best[..., None], index, np.iinfo(np.int64).max).min(axis=-1)
    if value.dtype.kind == "f":
        nan = np.isnan(value)
        first = np.where(nan.any(axis=-1), np.where(nan, index, -1).max(axis=-1), first)
    shape = tuple(1 if d in axis else partials.shape[d] for d in range(partials.ndim))
    out = np.empty(shape if keepdims else best.shape, dtype=partials.dtype)
    out["value"] = best.reshape(out.shape)
    out["index"] = first.reshape(out.shape)
    return out


def global_pool(op: str, x, kind: str, keepdims: bool, grad: bool):
    """A global max or mean of Dask ``x`` (N, C, *spatial): ``(result, pullback)``."""
    import functools
    known_chunks(op, x)
    if x.ndim < 3:
        fail(op, f"x must have shape (N, C, *spatial) with at least one spatial dim, "
             f"got shape {x.shape}")
    spatial = tuple(range(2, x.ndim))
    threads = block_threads.current()
    if kind == "mean":
        partials = _whole_blocks(x, op, _mean_partial, _TOTAL, threads)
        sums = da.reduction(partials, _identity, _mean_combine, combine=_mean_combine,
                            axis=spatial, keepdims=True, dtype=_TOTAL, concatenate=True,
                            meta=np.empty((0,) * x.ndim, _TOTAL))
        y = (sums["total"] / sums["cells"]).astype(x.dtype)
    else:
        run = functools.partial(_winner_partial, kind=kind)
        combine = functools.partial(_winner_combine, kind=kind)
        partials = _whole_blocks(x, op, run, _winner_dtype(x.dtype), threads)
        sums = da.reduction(partials, _identity, combine, combine=combine, axis=spatial,
                            keepdims=True, dtype=partials.dtype, concatenate=True,
                            meta=np.empty((0,) * x.ndim, partials.dtype))
        y = sums["value"]
    result = y if keepdims else y.reshape(x.shape[:2])
    if not grad:
        return result, None

    def pullback(dy):
        dy = checked_dy(op, dy, result).reshape(x.shape[:2] + (1,) * len(spatial))
        work = x.dtype if x.dtype.kind == "f" else np.result_type(dy.dtype, np.float16)
        dy = dy.rechunk(x.chunks[:2] + ((1,),) * len(spatial)).astype(work)
        if kind == "mean":
            cells = math.prod(x.shape[2:])
            spread = functools.partial(_spread_block, cells=cells)
            return da.map_blocks(spread, _carrier(x), dy, chunks=x.chunks,
                                 meta=np.empty((0,) * x.ndim, work),
                                 name=f"{op}-grad-{tokenize(dy.name, x.chunks)}")
        winners = sums["index"].rechunk(x.chunks[:2] + ((1,),) * len(spatial))
        send = functools.partial(_send_block, bounds=_all_bounds(x))
        return da.map_blocks(send, _carrier(x), dy, winners, chunks=x.chunks,
                             meta=np.empty((0,) * x.ndim, work),
                             name=f"{op}-grad-{tokenize(dy.name, winners.name)}")

    return result, pullback


def _carrier(x):
    """An array of ``x``'s chunks that holds no data (a broadcast scalar per block): it
    gives map_blocks the blocks to make, dy and the winners broadcast over them."""
    return da.zeros(x.shape, chunks=x.chunks, dtype=bool)


def _identity(partials, axis=None, keepdims=True, **_):
    return partials


def _spread_block(carrier, dy, cells):
    """A global mean's gradient on one block: dy / cells on every cell."""
    shape = carrier.shape
    out = np.empty(shape, dtype=dy.dtype)
    out[...] = dy / dy.dtype.type(cells)
    return out


def _send_block(carrier, dy, winners, bounds, block_id=None):
    """A global max's gradient on one block: dy at each plane's winner if it is here."""
    shape = carrier.shape
    out = np.zeros(shape, dtype=dy.dtype)
    starts = [bounds[d][block_id[d]] for d in range(2, len(shape))]
    plane = tuple(b[-1] for b in bounds[2:])
    cells = np.unravel_index(winners.reshape(shape[:2]), plane)
    local = [c - s for c, s in zip(cells, starts)]
    inside = np.logical_and.reduce([(l >= 0) & (l < n) for l, n in zip(local, shape[2:])])
    n, c = np.nonzero(inside)
    out[(n, c) + tuple(l[n, c] for l in local)] = dy.reshape(shape[:2])[n, c]
    return out


# ------------------------------------------------------------------------- max_unpool
# Unpooling runs the other way: the Window's input cells are the output and its windows
# are x's cells. An output chunk gets every x cell whose window reaches it
# (`input_spans`), so indices must lie in their own window, as max pooling makes them.

@dataclass(frozen=True, eq=False)
class _Unpool:
    op: str
    run: Callable          # run(x, local_index, out_spatial, grad) -> (y, pullback)
    window: Window
    dims: Tuple[int, ...]
    out_bounds: Tuple[Tuple[int, ...], ...]   # per pooled dim, the output's chunk ends
    out_spans: Tuple[Tuple[Span, ...], ...]   # per output chunk: its windows and region
    in_spans: Tuple[Tuple[Span, ...], ...]    # per chunk of x: its windows' region
    threads: int
    backend: Optional[str]

    def _local(self, index: np.ndarray, spans: Sequence[Span]) -> np.ndarray:
        cells = np.unravel_index(index, self.window.in_size)
        shape = tuple(s.in_hi - s.in_lo for s in spans)
        local = tuple(c - s.in_lo for c, s in zip(cells, spans))
        if not all(((l >= 0) & (l < n)).all() for l, n in zip(local, shape)):
            fail(self.op, "on a Dask array, indices must lie inside their own pooling "
                 "window, as max pooling returns them")
        return np.ravel_multi_index(local, shape).astype(np.int64)

    def forward(self, x, index, block_id=None):
        spans = [self.out_spans[k][block_id[d]] for k, d in enumerate(self.dims)]
        shape = tuple(s.in_hi - s.in_lo for s in spans)
        with running(self.threads, self.backend):
            y, _ = self.run(x, self._local(np.asarray(index), spans), shape, False)
        trim = [slice(None)] * y.ndim
        for k, (span, d) in enumerate(zip(spans, self.dims)):
            lo, hi = self.out_bounds[k][block_id[d]], self.out_bounds[k][block_id[d] + 1]
            trim[d] = slice(lo - span.in_lo, hi - span.in_lo)
        return y[tuple(trim)]

    def backward(self, dy_region, x, index, block_id=None):
        spans = [self.in_spans[k][block_id[d]] for k, d in enumerate(self.dims)]
        shape = tuple(s.in_hi - s.in_lo for s in spans)
        with running(self.threads, self.backend):
            _, pullback = self.run(x, self._local(np.asarray(index), spans), shape, True)
            return pullback(dy_region)

    def __dask_tokenize__(self):
        return (self.op, self.window.in_size, self.window.out_size, self.window.kernel,
                self.window.stride, self.window.pad_lo, self.dims, self.out_bounds,
                self.threads, self.backend)


def unpool(op: str, x, indices, window: Window, dims: Sequence[int], run, grad: bool):
    """max_unpool of Dask ``x`` with Dask or NumPy ``indices``: ``(y, pullback)``."""
    known_chunks(op, x)
    if not isinstance(indices, da.Array):
        indices = da.from_array(np.asarray(indices), chunks=x.chunks)
    if indices.dtype.kind not in "iu":
        type_fail(op, f"indices has dtype {indices.dtype}; use an integer dtype (int64)")
    if indices.shape != x.shape:
        fail(op, f"indices has shape {indices.shape} but x has shape {x.shape}")
    indices = indices.rechunk(x.chunks)
    dims = tuple(d % x.ndim for d in dims)
    out_bounds, out_spans, in_spans = [], [], []
    for axis, d in zip(window.axes, dims):
        lo, hi = _reach(axis)
        starts = _bounds(x.chunks[d])[:-1]
        ends = sorted(set(int(lo[o]) for o in starts[1:]) - {0, axis.size})
        cuts = (0,) + tuple(ends) + (axis.size,)
        out_bounds.append(cuts)
        out_spans.append(input_spans(axis, cuts))
        in_spans.append(tuple(Span(int(a), int(b), int(lo[a:b].min()), int(hi[a:b].max()))
                              for a, b in zip(_bounds(x.chunks[d])[:-1], _bounds(x.chunks[d])[1:])))
    plan = _Unpool(op, run, window, dims, tuple(out_bounds), tuple(out_spans), tuple(in_spans),
                   block_threads.current(), backends.chosen())
    token = tokenize(x.name, indices.name, plan)
    xs, idx = x, indices
    for spans, d in zip(out_spans, dims):
        xs = regroup(xs, d, [(s.out_lo, s.out_hi) for s in spans])
        idx = regroup(idx, d, [(s.out_lo, s.out_hi) for s in spans])
    chunks = list(x.chunks)
    for cuts, d in zip(out_bounds, dims):
        chunks[d] = tuple(np.diff(cuts).tolist())
    empty = lambda dtype: np.empty((0,) * x.ndim, dtype=dtype)
    y = da.map_blocks(plan.forward, xs, idx, chunks=tuple(chunks), meta=empty(x.dtype),
                      name=f"{op}-{token}")
    if not grad:
        return y, None

    def pullback(dy):
        dy = checked_dy(op, dy, y)
        work = x.dtype if x.dtype.kind == "f" else np.result_type(dy.dtype, np.float16)
        dy = dy.rechunk({d: x.chunks[d] for d in range(x.ndim) if d not in dims})
        for spans, d in zip(in_spans, dims):
            dy = regroup(dy, d, [(s.in_lo, s.in_hi) for s in spans])
        return da.map_blocks(plan.backward, dy, x, indices, chunks=x.chunks,
                             meta=empty(work), name=f"{op}-grad-{tokenize(token, dy.name)}")

    return y, pullback
