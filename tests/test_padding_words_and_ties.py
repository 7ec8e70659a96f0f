"""padding="same"/"valid" (TensorFlow's rule, checked against a loop-by-loop
computation: TensorFlow is not installed) and ties="split" (checked by hand)."""
import numpy as np
import pytest

import ndpool
from naive import pool, tf_geometry
from oracle import tie_free


def _case(seed, rank, kind):
    rng = np.random.default_rng([seed, rank, 23, len(kind)])
    kernel = tuple(int(v) for v in rng.integers(1, 5 if rank < 3 else 4, size=rank))
    stride = tuple(int(v) for v in rng.integers(1, 4, size=rank))
    dilation = tuple(int(v) for v in rng.integers(1, 3, size=rank)) if kind != "avg" else (
        (1,) * rank)
    word = str(rng.choice(["same", "valid"]))
    extents = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    low = [e if word == "valid" else 1 for e in extents]
    spatial = tuple(int(rng.integers(lo, lo + (9 if rank < 3 else 5))) for lo in low)
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) + spatial
    return rng, shape, kernel, stride, dilation, word


def _call(kind, rank, x, kernel, stride, dilation, word, **extra):
    op = getattr(ndpool, f"{kind}_pool{rank}d")
    if kind == "avg":
        return ndpool.vjp(op, x, kernel, stride, word, **extra)
    return ndpool.vjp(op, x, kernel, stride, word, dilation, **extra)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kind", ["max", "min", "avg"])
def test_padding_words_match_tensorflow_rule(backend, kind, rank, seed):
    rng, shape, kernel, stride, dilation, word = _case(seed, rank, kind)
    x = tie_free(rng, shape)
    out = tuple(tf_geometry(n, k, s, d, word)[0]
                for n, k, s, d in zip(shape[2:], kernel, stride, dilation))
    dy = rng.standard_normal(shape[:2] + out)
    try:
        y_expected, dx_expected = pool(x, kind, kernel, stride, dilation, word, dy)
    except ValueError:       # a dilated window that skips the whole input is refused
        with pytest.raises(ValueError, match=f"{kind}_pool{rank}d: dilation="):
            _call(kind, rank, x, kernel, stride, dilation, word)
        return
    extra = dict(count_include_pad=bool(rng.random() < 0.5)) if kind == "avg" else {}
    with ndpool.use_backend(backend):
        y, pullback = _call(kind, rank, x, kernel, stride, dilation, word, **extra)
        dx = pullback(dy)
    assert y.shape == shape[:2] + out
    np.testing.assert_allclose(y, y_expected, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(dx, dx_expected, rtol=1e-13, atol=1e-14)


def test_same_puts_the_odd_pad_cell_at_the_end(backend):
    x = np.arange(1.0, 5.0).reshape(1, 1, 4)     # 1 2 3 4, k=2 s=1: pad 0 left, 1 right
    with ndpool.use_backend(backend):
        np.testing.assert_array_equal(ndpool.avg_pool1d(x, 2, 1, "same")[0, 0],
                                      [1.5, 2.5, 3.5, 4.0])
        np.testing.assert_array_equal(ndpool.max_pool1d(-x, 2, 1, "same")[0, 0],
                                      [-1, -2, -3, -4])
        # k=4 s=1: pad 1 left, 2 right; padded cells never count in the average
        np.testing.assert_allclose(ndpool.avg_pool1d(x, 4, 1, "same")[0, 0],
                                   [6 / 3, 10 / 4, 9 / 3, 7 / 2])
        assert ndpool.avg_pool1d(x, 3, 2, "valid").shape == (1, 1, 1)
        assert ndpool.max_pool2d(np.zeros((1, 1, 7, 5)), 3, 2, "same").shape == (1, 1, 4, 3)


def test_same_channels_last(backend):
    x = tie_free(np.random.default_rng(0), (2, 3, 7, 5))
    with ndpool.use_backend(backend):
        a = ndpool.max_pool2d(x, 3, 2, "same")
        b = ndpool.max_pool2d(np.moveaxis(x, 1, -1), 3, 2, "same", layout="channels_last")
    np.testing.assert_array_equal(np.moveaxis(b, -1, 1), a)


# --------------------------------------------------------------------- ties="split"
@pytest.mark.parametrize("kind", ["max", "min"])
def test_split_ties_crafted(backend, kind):
    sign = 1.0 if kind == "max" else -1.0
    op = getattr(ndpool, f"{kind}_pool2d")
    x = sign * np.array([[[[1.0, 3.0], [3.0, 3.0]]]])
    with ndpool.use_backend(backend):
        _, pullback = ndpool.vjp(op, x, 2, ties="split")
        dx = pullback(np.full((1, 1, 1, 1), 6.0))
    np.testing.assert_array_equal(dx, [[[[0.0, 2.0], [2.0, 2.0]]]])


def test_split_ties_overlapping_windows_crafted(backend):
    x = np.array([[[2.0, 2.0, 1.0, 2.0]]])          # windows [2,2] [2,1] [1,2]
    dy = np.array([[[4.0, 10.0, 100.0]]])
    with ndpool.use_backend(backend):
        _, split = ndpool.vjp(ndpool.max_pool1d, x, 2, 1, ties="split")
        _, first = ndpool.vjp(ndpool.max_pool1d, x, 2, 1)
        np.testing.assert_array_equal(split(dy), [[[2.0, 12.0, 0.0, 100.0]]])
        np.testing.assert_array_equal(first(dy), [[[4.0, 10.0, 0.0, 100.0]]])


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kind", ["max", "min"])
def test_split_ties_equal_shares_that_sum_to_dy(backend, kind, rank, seed):
    """Many ties (small integers): each window's dy is shared equally by its tied
    winners (loop-by-loop check), so the total gradient equals the total of dy."""
    rng, shape, kernel, stride, dilation, word = _case(seed, rank, kind + "split")
    x = rng.integers(0, 3, size=shape).astype(np.float64)
    out = tuple(tf_geometry(n, k, s, d, word)[0]
                for n, k, s, d in zip(shape[2:], kernel, stride, dilation))
    dy = rng.standard_normal(shape[:2] + out)
    try:
        _, dx_expected = pool(x, kind, kernel, stride, dilation, word, dy, ties="split")
    except ValueError:       # a dilated window that skips the whole input is refused
        with pytest.raises(ValueError, match=f"{kind}_pool{rank}d: dilation="):
            _call(kind, rank, x, kernel, stride, dilation, word, ties="split")
        return
    with ndpool.use_backend(backend):
        _, pullback = _call(kind, rank, x, kernel, stride, dilation, word, ties="split")
        dx = pullback(dy)
    np.testing.assert_allclose(dx, dx_expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx.sum(), dy.sum(), rtol=1e-10, atol=1e-10)


def test_split_equals_first_without_ties(backend):
    x = tie_free(np.random.default_rng(9), (2, 2, 7, 6))
    dy = np.random.default_rng(10).standard_normal((2, 2, 4, 3))
    with ndpool.use_backend(backend):
        _, split = ndpool.vjp(ndpool.max_pool2d, x, 3, 2, 1, ties="split")
        _, first = ndpool.vjp(ndpool.max_pool2d, x, 3, 2, 1)
        np.testing.assert_array_equal(split(dy), first(dy))


def test_split_ties_float16_accumulates_exactly(backend):
    x = np.ones((1, 1, 3, 3), dtype=np.float16)
    with ndpool.use_backend(backend):
        _, pullback = ndpool.vjp(ndpool.max_pool2d, x, 3, ties="split")
        dx = pullback(np.full((1, 1, 1, 1), 9.0, dtype=np.float16))
    assert dx.dtype == np.float16
    np.testing.assert_array_equal(dx, np.ones((1, 1, 3, 3)))
