"""Odd but valid inputs: read-only arrays, negative strides, non-contiguous views and an
empty batch all work, give what a contiguous copy gives, and are never modified (by
the op or by its backward pass)."""
import numpy as np
import pytest

import ndpool
from oracle import tie_free

OPS = [
    ("max_pool1d", (3,), dict(stride=2, padding=1, return_indices=True), 1),
    ("max_pool2d", ((3, 2),), dict(stride=2, padding=1, dilation=(1, 2), ceil_mode=True), 2),
    ("max_pool3d", (2,), dict(stride=1, padding="same"), 3),
    ("min_pool2d", (3,), dict(stride=2, ties="split"), 2),
    ("min_pool3d", (2,), dict(return_indices=True), 3),
    ("avg_pool1d", (3,), dict(stride=2, padding=1, count_include_pad=False), 1),
    ("avg_pool2d", (3,), dict(stride=2, ceil_mode=True, divisor_override=2), 2),
    ("avg_pool3d", (2,), dict(padding="valid"), 3),
    ("lp_pool1d", (2, 3), dict(stride=2), 1),
    ("lp_pool2d", (1.5, 2), dict(ceil_mode=True), 2),
    ("lp_pool3d", (3, 2), {}, 3),
    ("adaptive_max_pool1d", (5,), dict(return_indices=True), 1),
    ("adaptive_max_pool2d", ((3, 7),), {}, 2),
    ("adaptive_max_pool3d", (2,), {}, 3),
    ("adaptive_avg_pool1d", (3,), {}, 1),
    ("adaptive_avg_pool2d", ((4, 2),), {}, 2),
    ("adaptive_avg_pool3d", (3,), {}, 3),
    ("fractional_max_pool2d", (2,), dict(output_size=3, rng=5, return_indices=True), 2),
    ("fractional_max_pool3d", (2,), dict(output_ratio=0.6, rng=6), 3),
    ("global_max_pool", (), {}, 2),
    ("global_avg_pool", (), dict(keepdims=True), 3),
]
IDS = [f"{o[0]}-{i}" for i, o in enumerate(OPS)]


def _output(result):
    return result[0] if isinstance(result, tuple) else result


def _run(backend, name, x, args, kwargs, seed=0):
    op = getattr(ndpool, name)
    with ndpool.use_backend(backend):
        result, pullback = ndpool.vjp(op, x, *args, **kwargs)
        y = _output(result)
        dy = np.random.default_rng(seed).standard_normal(y.shape).astype(
            y.dtype if y.dtype.kind == "f" else np.float64)
        return result, pullback(dy)


def _views(base):
    """(description, view) pairs with odd strides over ``base``'s memory."""
    spatial = tuple(range(2, base.ndim))
    yield "negative strides", base[..., ::-1]
    yield "all negative", base[::-1, ::-1][(slice(None),) * 2 + (slice(None, None, -1),) * len(spatial)]
    yield "every other channel", base[:, ::2]
    yield "spatial step two", base[..., ::2]
    yield "swapped spatial dims", np.swapaxes(base, -1, -2)
    yield "fortran order", np.asfortranarray(base)


@pytest.mark.parametrize("name, args, kwargs, rank", OPS, ids=IDS)
def test_views_and_read_only_inputs(backend, name, args, kwargs, rank):
    rng = np.random.default_rng(1)
    base = tie_free(rng, (2, 4) + (9,) * rank, positive=name.startswith("lp"))
    base.setflags(write=False)           # read-only everywhere below
    snapshot = base.copy()
    # max/min-type results are selections: bit-equal; sums may round differently
    # (NumPy's SIMD and strided loops differ in the last bit, e.g. in x ** p)
    same = np.testing.assert_array_equal
    if name.startswith(("avg", "lp", "adaptive_avg", "global_avg")):
        same = lambda a, b, err_msg: np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15,
                                                                err_msg=err_msg)
    for what, view in _views(base):
        expected, expected_dx = _run(backend, name, np.ascontiguousarray(view), args, kwargs)
        got, dx = _run(backend, name, view, args, kwargs)
        got = got if isinstance(got, tuple) else (got,)
        expected = expected if isinstance(expected, tuple) else (expected,)
        for a, b in zip(got, expected):
            same(a, b, err_msg=what)
        same(dx, expected_dx, err_msg=what)
    np.testing.assert_array_equal(base, snapshot, err_msg="the input was modified")


@pytest.mark.parametrize("name, args, kwargs, rank", OPS, ids=IDS)
def test_the_input_is_never_modified(backend, name, args, kwargs, rank):
    """A writable input (NaN included) is left exactly as it was by op and pullback."""
    rng = np.random.default_rng(2)
    x = tie_free(rng, (2, 3) + (8,) * rank, positive=name.startswith("lp"))
    if not name.startswith(("lp", "avg", "adaptive_avg", "global_avg")):
        x[0, 0, ...] = np.nan
    snapshot = x.copy()
    _run(backend, name, x, args, kwargs)
    np.testing.assert_array_equal(x, snapshot)


@pytest.mark.parametrize("name, args, kwargs, rank", OPS, ids=IDS)
def test_empty_batch(backend, name, args, kwargs, rank):
    x = np.zeros((0, 3) + (8,) * rank, dtype=np.float32)
    full = tie_free(np.random.default_rng(3), (1, 3) + (8,) * rank, np.float32, positive=True)
    if name.startswith("fractional"):
        kwargs = dict(kwargs, rng=None, samples=np.full((0, 3, rank), 0.5, np.float32))
        one = dict(kwargs, samples=np.full((1, 3, rank), 0.5, np.float32))
    else:
        one = kwargs
    result, dx = _run(backend, name, x, args, kwargs)
    reference, _ = _run(backend, name, full, args, one)
    y, y1 = _output(result), _output(reference)
    assert y.shape == (0,) + y1.shape[1:]
    assert y.dtype == np.float32
    assert dx.shape == x.shape and dx.dtype == np.float32
    if isinstance(result, tuple):
        assert result[1].shape == y.shape and result[1].dtype == np.int64


def test_unpool_views_read_only_and_empty_batch(backend):
    rng = np.random.default_rng(4)
    x = tie_free(rng, (2, 3, 8, 6))
    with ndpool.use_backend(backend):
        y, idx = ndpool.max_pool2d(x, 2, return_indices=True)
        expected = ndpool.max_unpool2d(y, idx, 2)
        y_view, idx_view = np.asfortranarray(y), np.asfortranarray(idx)
        y_view.setflags(write=False)
        idx_view.setflags(write=False)
        np.testing.assert_array_equal(ndpool.max_unpool2d(y_view, idx_view, 2), expected)
        flipped = ndpool.max_unpool2d(y[:, ::-1], idx[:, ::-1], 2)
        np.testing.assert_array_equal(flipped, expected[:, ::-1])
        out, pullback = ndpool.vjp(ndpool.max_unpool2d, y_view, idx_view, 2)
        dy = rng.standard_normal(out.shape)
        dy.setflags(write=False)
        np.testing.assert_array_equal(pullback(dy[..., ::-1][..., ::-1]), pullback(dy.copy()))
        empty = ndpool.max_unpool2d(np.zeros((0, 3, 4, 3)), np.zeros((0, 3, 4, 3), np.int64),
                                    2)
        assert empty.shape == (0, 3, 8, 6)


def test_pullback_accepts_read_only_non_contiguous_dy(backend):
    x = tie_free(np.random.default_rng(5), (2, 3, 7, 7))
    with ndpool.use_backend(backend):
        y, pullback = ndpool.vjp(ndpool.avg_pool2d, x, 3, 2, 1)
        dy = np.random.default_rng(6).standard_normal(y.shape[::-1]).T   # transposed view
        dy.setflags(write=False)
        np.testing.assert_array_equal(pullback(dy), pullback(np.ascontiguousarray(dy)))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.uint8, np.int32])
def test_dtype_is_preserved(backend, dtype):
    x = (tie_free(np.random.default_rng(7), (2, 3, 6, 6)) * 8 % 100).astype(dtype)
    with ndpool.use_backend(backend):
        assert ndpool.max_pool2d(x, 2).dtype == dtype
        assert ndpool.min_pool2d(x, 3, 1, 1).dtype == dtype
        assert ndpool.adaptive_max_pool2d(x, 4).dtype == dtype
        assert ndpool.global_max_pool(x).dtype == dtype
        y, idx = ndpool.max_pool2d(x, 2, return_indices=True)
        assert ndpool.max_unpool2d(y, idx, 2).dtype == dtype
        if np.dtype(dtype).kind == "f":
            for op in (ndpool.avg_pool2d, ndpool.adaptive_avg_pool2d):
                assert op(x, 2).dtype == dtype
            assert ndpool.lp_pool2d(np.abs(x), 2, 2).dtype == dtype
            assert ndpool.global_avg_pool(x).dtype == dtype
            assert ndpool.fractional_max_pool2d(x, 2, output_size=3, rng=0).dtype == dtype
