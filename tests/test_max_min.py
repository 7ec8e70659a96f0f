"""Max and min pooling against PyTorch: values, indices and gradients on random geometries.

Min pooling has no PyTorch op; its counterpart is ``-max_pool(-x)`` (indices too).
Gradient checks use tie-free inputs; the tie and NaN tests check forward and indices,
and the backward pass through the (deterministic) indices.
"""
import numpy as np
import pytest

import ndpool
from oracle import check, random_shape, random_sliding, tie_free

torch = pytest.importorskip("torch")
F = torch.nn.functional

FLOATS = [np.float32, np.float64]


def torch_extreme(kind, rank, geometry, return_indices=True):
    pool = getattr(F, f"max_pool{rank}d")
    kw = dict(geometry, return_indices=return_indices)
    if kind == "max":
        return lambda t: pool(t, **kw)
    def negated(t):
        out = pool(-t, **kw)
        return (-out[0], out[1]) if return_indices else -out
    return negated


def ndpool_extreme(kind, rank):
    return getattr(ndpool, f"{kind}_pool{rank}d")


def _case(seed, rank, kind, salt):
    rng = np.random.default_rng([seed, rank, salt, kind == "max"])
    spatial, geometry = random_sliding(rng, rank)
    channels_last = bool(rng.random() < 0.25)
    batched = bool(rng.random() < 0.8)
    shape = random_shape(rng, rank, spatial, channels_last=channels_last, batched=batched)
    kwargs = dict(geometry, return_indices=True)
    if channels_last:
        kwargs["layout"] = "channels_last"
    return rng, shape, geometry, kwargs


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kind", ["max", "min"])
def test_random_geometry_tie_free(backend, kind, rank, dtype, seed):
    rng, shape, geometry, kwargs = _case(seed, rank, kind, 0)
    x = tie_free(rng, shape, dtype)
    check(ndpool_extreme(kind, rank), torch_extreme(kind, rank, geometry), x, (), kwargs,
          backend=backend, exact=True, seed=seed)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kind", ["max", "min"])
def test_ties_go_to_the_first_element(backend, kind, rank, seed):
    """Small integers as floats: many ties; PyTorch keeps the first in scan order."""
    rng, shape, geometry, kwargs = _case(seed, rank, kind, 1)
    x = rng.integers(0, 3, size=shape).astype(np.float64)
    check(ndpool_extreme(kind, rank), torch_extreme(kind, rank, geometry), x, (),
          kwargs, backend=backend, exact=True, seed=seed)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kind", ["max", "min"])
def test_nan_wins_with_the_last_nan_index(backend, kind, rank, seed):
    rng, shape, geometry, kwargs = _case(seed, rank, kind, 2)
    x = tie_free(rng, shape, np.float32)
    x[rng.random(shape) < 0.3] = np.nan
    y, _ = check(ndpool_extreme(kind, rank), torch_extreme(kind, rank, geometry), x, (),
                 kwargs, backend=backend, exact=True, seed=seed)


def test_nan_index_is_the_last_nan_crafted(backend):
    x = np.array([[[1.0, np.nan, 5.0, np.nan, 2.0]]])
    with ndpool.use_backend(backend):
        for op in (ndpool.max_pool1d, ndpool.min_pool1d):
            y, idx = op(x, 5, return_indices=True)
            assert np.isnan(y[0, 0, 0]) and idx[0, 0, 0] == 3


def test_ties_crafted_first_in_scan_order(backend):
    x = np.array([[[[1.0, 7.0], [7.0, 7.0]]]])
    with ndpool.use_backend(backend):
        y, idx = ndpool.max_pool2d(x, 2, return_indices=True)
        assert y[0, 0, 0, 0] == 7 and idx[0, 0, 0, 0] == 1
        _, pullback = ndpool.vjp(ndpool.max_pool2d, x, 2)
        np.testing.assert_array_equal(pullback(np.full((1, 1, 1, 1), 2.0)),
                                      [[[[0.0, 2.0], [0.0, 0.0]]]])
        y, idx = ndpool.min_pool2d(-x, 2, return_indices=True)
        assert idx[0, 0, 0, 0] == 1


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kind", ["max", "min"])
def test_float16(backend, kind, rank, seed):
    rng, shape, geometry, kwargs = _case(seed, rank, kind, 3)
    x = tie_free(rng, shape, np.float16)
    check(ndpool_extreme(kind, rank), torch_extreme(kind, rank, geometry), x, (), kwargs,
          backend=backend, exact=True, seed=seed)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.int64,
                                   np.uint16])
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kind", ["max", "min"])
def test_integer_inputs_keep_their_dtype(backend, kind, rank, dtype, seed):
    """Integers (incl. the dtype's extremes) are compared with torch on float64 copies."""
    rng, shape, geometry, kwargs = _case(seed, rank, kind, 4)
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    x.flat[0], x.flat[-1] = info.min, info.max
    if np.dtype(dtype).itemsize >= 4:  # keep the values exact in torch's float64 copy
        x = (x // 2 ** 12).astype(dtype)
    check(ndpool_extreme(kind, rank), torch_extreme(kind, rank, geometry), x, (), kwargs,
          backend=backend, exact=True, seed=seed)


def test_integer_max_pool2d_matches_torch_int64_kernel(backend):
    rng = np.random.default_rng(0)
    x = rng.integers(-50, 50, size=(2, 3, 9, 8))
    with ndpool.use_backend(backend):
        y = ndpool.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True)
    expected = F.max_pool2d(torch.from_numpy(x), 3, 2, 1, ceil_mode=True).numpy()
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("kind", ["max", "min"])
def test_unbatched_and_channels_last_agree_with_batched(backend, kind):
    rng = np.random.default_rng(5)
    x = tie_free(rng, (3, 7, 9))
    op = ndpool_extreme(kind, 2)
    with ndpool.use_backend(backend):
        y, idx = op(x, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2),
                    return_indices=True)
        yb, idxb = op(x[None], (3, 2), stride=(2, 1), padding=1, dilation=(1, 2),
                      return_indices=True)
        yl, idxl = op(np.moveaxis(x, 0, -1), (3, 2), stride=(2, 1), padding=1,
                      dilation=(1, 2), return_indices=True, layout="channels_last")
    np.testing.assert_array_equal(y, yb[0])
    np.testing.assert_array_equal(idx, idxb[0])
    np.testing.assert_array_equal(np.moveaxis(yl, -1, 0), y)
    np.testing.assert_array_equal(np.moveaxis(idxl, -1, 0), idx)
