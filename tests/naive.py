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
