"""The reference backend: pure NumPy, written to be read, and the oracle for the core.

Every window is gathered with one fancy-indexing step from the per-dim tap tables of
``Window``, so regular, adaptive and fractional windows share all the code below:
forward is "gather, fill the out-of-bounds taps with the identity, reduce the trailing
axis", and every backward rule is "weight each gathered tap, scatter-add it back".
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

from .._window import Axis

name = "reference"


# ---------------------------------------------------------------- gathering windows
def _tables(axes: Sequence[Axis], spatial: Tuple[int, int, int]):
    """Where every window's taps are: flat per-plane positions and in-bounds mask.

    Both have shape (P', oD, oH, oW, kD*kH*kW), P' being 1 unless the windows differ per
    plane (fractional pooling); taps in the padding point at a valid cell and are masked.
    """
    index, valid = [], []
    for dim, axis in enumerate(axes):
        taps = np.arange(max(int(axis.count.max(initial=0)), 1))
        pos = axis.first[:, :, None] + axis.step * taps              # (P', out, K)
        ok = taps < axis.count[:, :, None]
        shape = [pos.shape[0], 1, 1, 1, 1, 1, 1]
        shape[1 + dim], shape[4 + dim] = pos.shape[1], pos.shape[2]
        index.append(np.where(ok, pos, axis.first[:, :, None]).reshape(shape))
        valid.append(ok.reshape(shape))
    d, h, w = index
    flat, mask = np.broadcast_arrays((d * spatial[1] + h) * spatial[2] + w,
                                     valid[0] & valid[1] & valid[2])
    shape = flat.shape[:4] + (int(np.prod(flat.shape[4:])),)   # (not -1: outputs may be empty)
    return flat.reshape(shape), mask.reshape(shape)


def _gather(x: np.ndarray, axes: Sequence[Axis]):
    """All windows of channels-first planes ``x`` (P, D, H, W): (P, oD, oH, oW, K)."""
    planes = x.shape[0]
    flat, mask = _tables(axes, x.shape[1:])
    plane = np.arange(planes).reshape(-1, 1, 1, 1, 1)
    windows = x.reshape(planes, int(np.prod(x.shape[1:])))[plane, flat]
    return windows, np.broadcast_to(mask, windows.shape), np.broadcast_to(flat, windows.shape)


def _scatter(weights: np.ndarray, flat: np.ndarray, spatial, dtype) -> np.ndarray:
    """Add each window tap's weight back onto its input cell."""
    planes = weights.shape[0]
    dx = np.zeros((planes, int(np.prod(spatial))), dtype=_accumulator(dtype))
    plane = np.broadcast_to(np.arange(planes).reshape(-1, 1, 1, 1, 1), weights.shape)
    np.add.at(dx, (plane, flat), weights)
    return dx.astype(dtype, copy=False).reshape((planes,) + tuple(spatial))


def _accumulator(dtype) -> np.dtype:
    return np.dtype(np.float32) if dtype == np.float16 else np.dtype(dtype)


def _outer(factors) -> np.ndarray:
    """The full divisor (oD, oH, oW) from its per-dim factors."""
    d, h, w = (np.asarray(f, dtype=np.float64) for f in factors)
    return d[:, None, None] * h[None, :, None] * w[None, None, :]


def _identity(dtype, kind: str):
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return info.min if kind == "max" else info.max
    return -np.inf if kind == "max" else np.inf


# ------------------------------------------------------------------ layout plumbing
def _first(x: np.ndarray, channels_last: bool) -> np.ndarray:
    """Canonical channels-last (B, D, H, W, C) as channels-first planes (B*C, D, H, W)."""
    if not channels_last:
        return x
    return np.moveaxis(x, 4, 1).reshape((x.shape[0] * x.shape[4],) + x.shape[1:4])


def _back(y: np.ndarray, channels_last: bool, like: tuple) -> np.ndarray:
    """Planes back to channels-last (B, D, H, W, C), B and C read off the shape ``like``."""
    if not channels_last:
        return y
    return np.moveaxis(y.reshape((like[0], like[-1]) + y.shape[1:]), 1, 4)


# ------------------------------------------------------------------------ the ops
def reduce(x: np.ndarray, axes: Sequence[Axis], kind: str, *, channels_last: bool = False,
           divisor: Optional[np.ndarray] = None, indices: Optional[str] = None):
    """Window max / min / sum / mean of canonical ``x``.

    Returns ``(y, winners)``; ``winners`` (flat per-plane int64 indices, NaN's last
    position winning, else the first extreme in scan order) only for max/min when
    ``indices`` is "flat" or "any" (this backend keeps flat indices either way).
    """
    like = x.shape
    planes = _first(x, channels_last)
    windows, mask, flat = _gather(planes, axes)
    if kind in ("sum", "mean"):
        acc = _accumulator(x.dtype)
        y = np.where(mask, windows, 0).sum(axis=-1, dtype=acc)
        if kind == "mean":
            y = y / _outer(divisor).astype(acc)
        indices = None
    else:
        filled = np.where(mask, windows, np.asarray(_identity(x.dtype, kind), x.dtype))
        y = filled.max(axis=-1) if kind == "max" else filled.min(axis=-1)
        indices = _winners(filled, y, mask, flat) if indices else None
    y = _back(y.astype(x.dtype, copy=False), channels_last, like)
    if indices is not None:
        indices = _back(indices, channels_last, like)
    return y, indices


def _winners(windows, best, mask, flat) -> np.ndarray:
    """Flat input index of each window's winner: the last NaN, else the first best."""
    k = windows.shape[-1]
    if windows.dtype.kind == "f":
        nan = np.isnan(windows)
        last_nan = k - 1 - np.argmax(nan[..., ::-1], axis=-1)
        first_best = np.argmax((windows == best[..., None]) & mask, axis=-1)
        pick = np.where(nan.any(axis=-1), last_nan, first_best)
    else:
        pick = np.argmax((windows == best[..., None]) & mask, axis=-1)
    return np.take_along_axis(flat, pick[..., None], axis=-1)[..., 0].astype(np.int64)


def scatter_indices(dy: np.ndarray, indices: np.ndarray, axes: Sequence[Axis], spatial, *,
                    channels_last=False):
    """Backward of max/min with first-winner ties: ``dx[indices] += dy`` per plane."""
    like = dy.shape
    dy, indices = _first(dy, channels_last), _first(indices, channels_last)
    dx = _scatter(dy[..., None], indices[..., None], spatial, dy.dtype)
    return _back(dx, channels_last, like)


def spread(dy: np.ndarray, axes: Sequence[Axis], spatial, divisor, *, channels_last=False):
    """Backward of a window mean: each window's ``dy / divisor`` to all its in-bounds taps."""
    like = dy.shape
    dy = _first(dy, channels_last)
    flat, mask = _tables(axes, spatial)
    acc = _accumulator(dy.dtype)
    share = (dy.astype(acc) / _outer(divisor).astype(acc))[..., None]
    weights = np.where(mask, share, 0)
    flat = np.broadcast_to(flat, weights.shape)
    return _back(_scatter(weights, flat, spatial, dy.dtype), channels_last, like)


def split_ties(x: np.ndarray, dy: np.ndarray, axes: Sequence[Axis], kind: str, *,
               channels_last=False):
    """Backward of max/min with ``ties="split"``: share dy equally among tied winners."""
    like = x.shape
    planes, dy = _first(x, channels_last), _first(dy, channels_last)
    windows, mask, flat = _gather(planes, axes)
    filled = np.where(mask, windows, np.asarray(_identity(x.dtype, kind), x.dtype))
    best = (filled.max(axis=-1) if kind == "max" else filled.min(axis=-1))[..., None]
    tied = (filled == best) & mask
    if filled.dtype.kind == "f":
        tied |= np.isnan(filled) & np.isnan(best)
    acc = _accumulator(dy.dtype)
    weights = tied * (dy.astype(acc) / tied.sum(axis=-1))[..., None]
    return _back(_scatter(weights, flat, planes.shape[1:], dy.dtype), channels_last, like)


def unpool(x: np.ndarray, indices: np.ndarray, spatial, *, channels_last=False):
    """Max-unpooling: zeros of size ``spatial`` with ``x`` written at ``indices``."""
    like = x.shape
    x, indices = _first(x, channels_last), _first(indices, channels_last)
    planes = x.shape[0]
    y = np.zeros((planes, int(np.prod(spatial))), dtype=x.dtype)
    count = int(np.prod(x.shape[1:]))
    y[np.arange(planes)[:, None], indices.reshape(planes, count)] = x.reshape(planes, count)
    return _back(y.reshape((planes,) + tuple(spatial)), channels_last, like)


def unpool_backward(dy: np.ndarray, indices: np.ndarray, *, channels_last=False):
    """Gradient of max-unpooling with respect to its input: ``dy`` read at ``indices``."""
    like = dy.shape
    dy, indices = _first(dy, channels_last), _first(indices, channels_last)
    planes = dy.shape[0]
    dx = np.take_along_axis(dy.reshape(planes, int(np.prod(dy.shape[1:]))),
                            indices.reshape(planes, int(np.prod(indices.shape[1:]))), axis=1)
    return _back(dx.reshape(indices.shape), channels_last, like)


# ------------------------------------------------------------------ median pooling
def median(x: np.ndarray, axes: Sequence[Axis], *, indices: bool = False):
    """Lower median of each window's in-bounds taps and its cell: the tap a stable sort
    puts at the median's place (equal values keep scan order, as torch.median); a window
    with a NaN gives its first NaN."""
    windows, mask, flat = _gather(x, axes)
    order = np.lexsort((windows, ~mask), axis=-1)   # in-bounds taps first, by value (stable)
    middle = ((mask.sum(axis=-1) - 1) // 2)[..., None]
    pick = np.take_along_axis(order, middle, -1)[..., 0]
    if windows.dtype.kind == "f":
        nan = np.isnan(windows) & mask
        pick = np.where(nan.any(axis=-1), np.argmax(nan, axis=-1), pick)
    pick = pick[..., None]
    y = np.take_along_axis(windows, pick, -1)[..., 0]
    return y, (np.take_along_axis(flat, pick, -1)[..., 0].astype(np.int64) if indices else None)


# -------------------------------------------------------------------- RoI pooling
# torchvision's CPU kernels, written out: ``corners`` are (K, 4) x1, y1, x2, y2 in the
# accumulator type A (float32 for float16 input), and every coordinate below is computed
# in A, in torchvision's order.
def _align_samples(start, bin_size, bins: int, grid: int, size: int):
    """One dim's bilinear samples of a box: (bins, grid) low and high cells, the weights
    of high (``l``) and low (``h``), and whether the sample is within a cell of the map."""
    A = type(start)
    i = (np.arange(max(grid, 0)) + 0.5).astype(np.float32).astype(A)
    v = start + np.arange(bins)[:, None].astype(A) * bin_size + i * bin_size / A(grid)
    valid = (v >= -1.0) & (v <= size)
    v = np.where(v <= 0, A(0), v)
    low = np.where(valid, v, 0).astype(np.int64)
    last = low >= size - 1
    low = np.where(last, size - 1, low)
    high = np.where(last, size - 1, low + 1)
    v = np.where(last, low.astype(A), v)
    l = np.where(valid, v - low.astype(A), A(0)).astype(A)
    h = np.where(valid, (1.0 - l.astype(np.float64)).astype(A), A(0))
    return low * valid, high * valid, l, h, valid


def _align_box(corner, size, scale, sampling_ratio: int, aligned: bool, shape):
    """A box's samples along H and W and its divisors (forward's, backward's)."""
    A = corner.dtype.type
    offset = A(0.5) if aligned else A(0)
    x1, y1, x2, y2 = (c * A(scale) - offset for c in corner)
    width, height = x2 - x1, y2 - y1
    if not aligned:   # malformed boxes become 1x1
        width, height = max(width, A(1)), max(height, A(1))
    bin_h, bin_w = height / A(size[0]), width / A(size[1])
    grid_h = sampling_ratio if sampling_ratio > 0 else int(np.ceil(height / A(size[0])))
    grid_w = sampling_ratio if sampling_ratio > 0 else int(np.ceil(width / A(size[1])))
    ys = _align_samples(y1, bin_h, size[0], grid_h, shape[2])
    xs = _align_samples(x1, bin_w, size[1], grid_w, shape[3])
    return ys, xs, A(max(grid_h * grid_w, 1)), A(grid_h * grid_w)


def _corner_weights(ys, xs):
    """The four (cell rows, cell columns, weight) corners of every sample, each of
    shape (PH, gh, PW, gw); invalid samples weigh 0."""
    (yl, yh, ly, hy, vy), (xl, xh, lx, hx, vx) = ys, xs
    r = lambda a: a[:, :, None, None]
    c = lambda a: a[None, None, :, :]
    ok = r(vy) & c(vx)
    return [(r(rows), c(cols), np.where(ok, r(wy) * c(wx), 0).astype(ly.dtype))
            for rows, wy in ((yl, hy), (yh, ly)) for cols, wx in ((xl, hx), (xh, lx))]


def roi_align(x, corners, image, size, scale, sampling_ratio, aligned):
    """Each bin the mean of its grid of bilinear samples (torchvision's roi_align)."""
    acc = corners.dtype
    y = np.zeros((len(image), x.shape[1]) + tuple(size), acc)
    for k, (corner, n) in enumerate(zip(corners, image)):
        ys, xs, count, _ = _align_box(corner, size, scale, sampling_ratio, aligned, x.shape)
        plane = x[n].astype(acc)
        total = sum(w * plane[:, rows, cols] for rows, cols, w in _corner_weights(ys, xs))
        y[k] = total.sum(axis=(2, 4)) / count
    return y.astype(x.dtype)


def roi_align_backward(dy, corners, image, size, scale, sampling_ratio, aligned, shape):
    """Each sample's share of its bin's gradient, ``dy * weight / count``, added to its
    four cells."""
    acc = corners.dtype
    dx = np.zeros(shape, acc)
    for k, (corner, n) in enumerate(zip(corners, image)):
        ys, xs, _, count = _align_box(corner, size, scale, sampling_ratio, aligned, shape)
        g = dy[k].astype(acc)[:, :, None, :, None]    # (C, PH, 1, PW, 1)
        for rows, cols, w in _corner_weights(ys, xs):
            rows, cols = np.broadcast_arrays(rows, cols)
            np.add.at(dx[n], (slice(None), rows, cols), g * w / count)
    return dx.astype(dy.dtype)


def _round_half_away(v) -> int:
    """C's round(): halves away from zero (NumPy's rounds them to even)."""
    return int(math.copysign(math.floor(abs(float(v)) + 0.5), float(v)))


def roi_pool(x, corners, image, size, scale):
    """Each bin the max of its cells after rounding the box to cells (torchvision's
    roi_pool); an empty bin is 0 and has no winner (-1)."""
    acc = corners.dtype.type
    y = np.zeros((len(image), x.shape[1]) + tuple(size), corners.dtype)
    argmax = np.full(y.shape, -1, np.int64)
    for k, (corner, n) in enumerate(zip(corners, image)):
        x1, y1, x2, y2 = (_round_half_away(c * acc(scale)) for c in corner)
        bin_h = acc(max(y2 - y1 + 1, 1)) / acc(size[0])
        bin_w = acc(max(x2 - x1 + 1, 1)) / acc(size[1])
        for ph in range(size[0]):
            h0 = min(max(int(np.floor(acc(ph) * bin_h)) + y1, 0), x.shape[2])
            h1 = min(max(int(np.ceil(acc(ph + 1) * bin_h)) + y1, 0), x.shape[2])
            for pw in range(size[1]):
                w0 = min(max(int(np.floor(acc(pw) * bin_w)) + x1, 0), x.shape[3])
                w1 = min(max(int(np.ceil(acc(pw + 1) * bin_w)) + x1, 0), x.shape[3])
                if h1 <= h0 or w1 <= w0:
                    continue
                cells = x[n, :, h0:h1, w0:w1].astype(corners.dtype).reshape(
                    x.shape[1], (h1 - h0) * (w1 - w0))
                best = np.where(np.isnan(cells), -np.inf, cells)
                first = np.argmax(best, axis=1)
                value = best[np.arange(len(first)), first]
                won = value > np.finfo(np.float32).min   # strictly above -FLT_MAX
                rows, cols = np.unravel_index(first, (h1 - h0, w1 - w0))
                y[k, :, ph, pw] = np.where(won, value, np.finfo(np.float32).min)
                argmax[k, :, ph, pw] = np.where(won, (rows + h0) * x.shape[3] + cols + w0, -1)
    return y.astype(x.dtype), argmax


def roi_pool_backward(dy, argmax, image, shape):
    """Each bin's gradient to its winner."""
    acc = np.float32 if dy.dtype == np.float16 else dy.dtype
    dx = np.zeros((shape[0], shape[1], shape[2] * shape[3]), acc)
    k, c, _, _ = np.nonzero(argmax >= 0)
    np.add.at(dx, (image[k], c, argmax[argmax >= 0]), dy[argmax >= 0].astype(acc))
    return dx.reshape(shape).astype(dy.dtype)
# ------------------------------------------------- softmax-weighted (SoftPool, LIP)
def _softmax_windows(x, logits, axes, channels_last):
    """Per window of canonical ``x``: its cells (0 in the padding), the softmax weights of
    ``logits`` (``x`` for SoftPool) over its in-bounds cells, and where the cells are."""
    acc = _accumulator(x.dtype)
    windows, mask, flat = _gather(_first(x, channels_last).astype(acc), axes)
    scores = windows if logits is None else _gather(
        _first(logits, channels_last).astype(acc), axes)[0]
    scores = np.where(mask, scores, -np.inf)
    with np.errstate(invalid="ignore"):
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights = weights / weights.sum(axis=-1, keepdims=True)
    return np.where(mask, windows, 0), np.where(mask, weights, 0), flat


def soft_pool(x: np.ndarray, logits: Optional[np.ndarray], axes: Sequence[Axis], *,
              channels_last=False):
    """Each window's ``sum(softmax(logits) * x)`` over its in-bounds cells; SoftPool
    (Stergiou et al. 2021) when ``logits`` is None (the logits are ``x``)."""
    cells, weights, _ = _softmax_windows(x, logits, axes, channels_last)
    y = (weights * cells).sum(axis=-1).astype(x.dtype)
    return _back(y, channels_last, x.shape)


def soft_pool_backward(x: np.ndarray, logits: Optional[np.ndarray], dy: np.ndarray,
                       axes: Sequence[Axis], *, channels_last=False):
    """``(dx, dlogits)`` of ``soft_pool``; for SoftPool ``(dx, None)``, dx holding both
    paths. With p the softmax weights and y the output: dy·p to x, dy·p·(x − y) to the
    logits."""
    cells, weights, flat = _softmax_windows(x, logits, axes, channels_last)
    y = (weights * cells).sum(axis=-1, keepdims=True)
    share = _first(dy, channels_last).astype(weights.dtype)[..., None] * weights
    to_logits = share * (cells - y)
    spatial = _first(x, channels_last).shape[1:]
    back = lambda taps: _back(_scatter(taps, flat, spatial, x.dtype), channels_last, x.shape)
    if logits is None:
        return back(share + to_logits), None
    return back(share), back(to_logits)
