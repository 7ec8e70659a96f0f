"""Loop-by-loop pooling written straight from the rules, for cases PyTorch cannot check:
TensorFlow's padding words and ties="split". Slow and obvious on purpose."""
from __future__ import annotations

import itertools
import math

import numpy as np


def tf_geometry(size, kernel, stride, dilation, word):
    """TensorFlow's rule: (out, pad_lo) for "same" / "valid"; odd pad cell at the end."""
    extent = dilation * (kernel - 1) + 1
    if word == "same":
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + extent - size, 0)
        return out, total // 2
    return math.ceil((size - extent + 1) / stride), 0


def windows(spatial, kernel, stride, dilation, pad_lo, out):
    """For every output position (scan order), the in-bounds input positions of its taps,
    in scan order."""
    for o in itertools.product(*(range(n) for n in out)):
        taps = []
        for j in itertools.product(*(range(k) for k in kernel)):
            pos = tuple(oo * s - p + jj * d for oo, s, p, jj, d in
                        zip(o, stride, pad_lo, j, dilation))
            if all(0 <= q < n for q, n in zip(pos, spatial)):
                taps.append(pos)
        yield o, taps


def pool(x, kind, kernel, stride, dilation, word, dy=None, ties="first"):
    """Forward (and, given ``dy``, backward) of max/min/avg on (N, C, *spatial) ``x``
    with a padding word. Padded cells are never taps: never maxima, never counted."""
    spatial = x.shape[2:]
    geo = [tf_geometry(n, k, s, d, word) for n, k, s, d in zip(spatial, kernel, stride,
                                                                dilation)]
    out, pad_lo = tuple(g[0] for g in geo), tuple(g[1] for g in geo)
    y = np.zeros(x.shape[:2] + out, dtype=np.float64)
    dx = np.zeros(x.shape, dtype=np.float64)
    for n, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        plane = x[n, c].astype(np.float64)
        for o, taps in windows(spatial, kernel, stride, dilation, pad_lo, out):
            if not taps:
                raise ValueError("a window with no tap in the input")
            values = [plane[t] for t in taps]
            if kind == "avg":
                y[(n, c) + o] = sum(values) / len(values)
                if dy is not None:
                    for t in taps:
                        dx[(n, c) + t] += dy[(n, c) + o] / len(values)
                continue
            best = max(values) if kind == "max" else min(values)
            y[(n, c) + o] = best
            if dy is not None:
                winners = [t for t, v in zip(taps, values) if v == best]
                if ties == "first":
                    winners = winners[:1]
                for t in winners:
                    dx[(n, c) + t] += dy[(n, c) + o] / len(winners)
    return y, dx


# ------------------------------------------------- explicit (before, after) padding
def explicit_out(size, kernel, stride, dilation, pad_lo, pad_hi, ceil_mode):
    """ONNX's output size (PyTorch's with two pads): floor or ceil of
    (in + lo + hi - extent) / stride, plus one; with ceil_mode a last window that would
    start in the right padding is dropped."""
    extent = dilation * (kernel - 1) + 1
    span = size + pad_lo + pad_hi - extent
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_lo:
        out -= 1
    return out


def same_pads(size, kernel, stride, dilation, lower=False):
    """ONNX's SAME_UPPER / SAME_LOWER pads: total = (out - 1) * stride + extent - in with
    out = ceil(in / stride); SAME_LOWER's head gets (total + 1) // 2."""
    extent = dilation * (kernel - 1) + 1
    total = max((math.ceil(size / stride) - 1) * stride + extent - size, 0)
    head = (total + 1) // 2 if lower else total // 2
    return head, total - head


def padded_pool(x, kind, kernel, stride, dilation, pads, ceil_mode=False,
                count_include_pad=True, norm=2.0, dy=None):
    """max / min / avg / lp of (N, C, *spatial) ``x`` with (before, after) ``pads`` per dim,
    one window at a time. Returns (y, flat row-major indices of the first extreme, dx).

    avg divides by the taps in the input or (when ``count_include_pad``) the padding,
    never the ceil_mode overhang; lp is PyTorch's composition, ``(K * sum(x**p) /
    counted) ** (1/p)`` with the padding counted (``x >= 0`` only)."""
    spatial = x.shape[2:]
    out = tuple(explicit_out(n, k, s, d, lo, hi, ceil_mode) for n, k, s, d, (lo, hi)
                in zip(spatial, kernel, stride, dilation, pads))
    volume = math.prod(kernel)
    y = np.zeros(x.shape[:2] + out)
    idx = np.zeros(x.shape[:2] + out, dtype=np.int64)
    dx = np.zeros(x.shape)
    for n, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        plane = x[n, c].astype(np.float64)
        for o in itertools.product(*(range(m) for m in out)):
            inside, counted = [], 0
            for j in itertools.product(*(range(k) for k in kernel)):
                pos = tuple(oo * s - lo + jj * d for oo, s, (lo, _), jj, d in
                            zip(o, stride, pads, j, dilation))
                if all(0 <= q < m for q, m in zip(pos, spatial)):
                    inside.append(pos)
                limits = [(-lo, m + hi) if count_include_pad else (0, m)
                          for (lo, hi), m in zip(pads, spatial)]
                counted += all(a <= q < b for q, (a, b) in zip(pos, limits))
            if not inside:
                raise ValueError("a window with no tap in the input")
            values = [plane[t] for t in inside]
            at = (n, c) + o
            g = 0.0 if dy is None else dy[at]
            if kind in ("max", "min"):
                best = max(values) if kind == "max" else min(values)
                first = inside[values.index(best)]
                y[at], idx[at] = best, np.ravel_multi_index(first, spatial)
                dx[(n, c) + first] += g
            elif kind == "avg":
                y[at] = sum(values) / counted
                for t in inside:
                    dx[(n, c) + t] += g / counted
            else:
                total = sum(v ** norm for v in values)
                y[at] = (volume * total / counted) ** (1 / norm)
                if y[at] > 0:   # d/dv of (K * sum / counted) ** (1/p)
                    share = g * y[at] ** (1 - norm) * volume / counted
                    for t, v in zip(inside, values):
                        dx[(n, c) + t] += share * v ** (norm - 1)
    return y, idx, dx
