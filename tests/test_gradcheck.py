"""Finite-difference checks of every pullback, in float64: the smooth ops (avg, Lp,
adaptive avg, global avg) anywhere, max/min-type ops on tie-free inputs (values 1/8
apart, far wider than the step, so no winner changes)."""
import numpy as np
import pytest

import ndpool
from oracle import tie_free

STEP = 1e-6


def numeric_gradient(f, x, dy):
    """d<f(x), dy>/dx by central differences, one input element at a time."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[i] += STEP
        minus[i] -= STEP
        grad[i] = np.sum((f(plus) - f(minus)) * dy) / (2 * STEP)
    return grad


CASES = [
    # (op, shape, args, kwargs, positive input)
    ("avg_pool1d", (2, 2, 9), (3,), dict(stride=2, padding=1, ceil_mode=True), False),
    ("avg_pool2d", (1, 2, 6, 5), ((3, 2),), dict(stride=(2, 1), padding=1,
                                                 count_include_pad=False), False),
    ("avg_pool2d", (1, 2, 6, 5), (3,), dict(stride=2, divisor_override=4, ceil_mode=True),
     False),
    ("avg_pool2d", (1, 2, 6, 5), (3,), dict(stride=2, padding="same"), False),
    ("avg_pool3d", (1, 1, 4, 5, 4), (2,), dict(stride=(1, 2, 2), padding=1), False),
    ("lp_pool1d", (2, 2, 9), (2, 3), dict(stride=2, ceil_mode=True), True),
    ("lp_pool2d", (1, 2, 6, 5), (1.5, 2), dict(ceil_mode=True), True),
    ("lp_pool2d", (1, 2, 6, 5), (3, (2, 3)), dict(stride=1), True),
    ("lp_pool3d", (1, 1, 4, 4, 5), (2, 2), {}, True),
    ("adaptive_avg_pool1d", (2, 2, 7), (3,), {}, False),
    ("adaptive_avg_pool2d", (1, 2, 5, 6), ((4, 9),), {}, False),
    ("adaptive_avg_pool3d", (1, 1, 4, 5, 3), (2,), {}, False),
    ("global_avg_pool", (2, 3, 4, 3), (), {}, False),
    ("max_pool1d", (2, 2, 9), (3,), dict(stride=2, padding=1, dilation=2), False),
    ("max_pool2d", (1, 2, 7, 6), ((3, 2),), dict(stride=2, padding=1, ceil_mode=True), False),
    ("max_pool3d", (1, 1, 5, 4, 4), (2,), dict(stride=1), False),
    ("max_pool2d", (1, 2, 7, 6), (3,), dict(stride=2, padding="same", ties="split"), False),
    ("min_pool1d", (2, 2, 9), (3,), dict(stride=2, padding=1), False),
    ("min_pool2d", (1, 2, 7, 6), (3,), dict(stride=(1, 2), dilation=(2, 1)), False),
    ("min_pool3d", (1, 1, 4, 5, 4), (2,), dict(ceil_mode=True), False),
    ("adaptive_max_pool1d", (2, 2, 7), (5,), {}, False),
    ("adaptive_max_pool2d", (1, 2, 5, 6), ((3, 8),), {}, False),
    ("adaptive_max_pool3d", (1, 1, 4, 5, 3), (2,), {}, False),
    ("fractional_max_pool2d", (1, 2, 7, 6), (2,), dict(output_size=(4, 3), rng=3), False),
    ("fractional_max_pool3d", (1, 1, 6, 5, 5), (2,), dict(output_size=3, rng=4), False),
    ("global_max_pool", (2, 3, 4, 3), (), {}, False),
]


@pytest.mark.parametrize("name, shape, args, kwargs, positive", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_pullback_matches_finite_differences(backend, name, shape, args, kwargs, positive):
    op = getattr(ndpool, name)
    rng = np.random.default_rng(len(name) + len(shape))
    x = tie_free(rng, shape, positive=positive)
    if positive:
        x = x + 0.5        # away from zero, where x**p is smooth for p = 1.5
    with ndpool.use_backend(backend):
        y, pullback = ndpool.vjp(op, x, *args, **kwargs)
        dy = rng.standard_normal(y.shape)
        dx = pullback(dy)
        expected = numeric_gradient(lambda v: op(v, *args, **kwargs), x, dy)
    np.testing.assert_allclose(dx, expected, rtol=1e-6, atol=1e-7)


def test_max_unpool_pullback_matches_finite_differences(backend):
    rng = np.random.default_rng(0)
    x = tie_free(rng, (1, 2, 6, 7))
    with ndpool.use_backend(backend):
        pooled, idx = ndpool.max_pool2d(x, 2, return_indices=True)
        y, pullback = ndpool.vjp(ndpool.max_unpool2d, pooled, idx, 2, output_size=(6, 7))
        dy = rng.standard_normal(y.shape)
        expected = numeric_gradient(
            lambda v: ndpool.max_unpool2d(v, idx, 2, output_size=(6, 7)), pooled, dy)
        np.testing.assert_allclose(pullback(dy), expected, rtol=1e-6, atol=1e-7)
