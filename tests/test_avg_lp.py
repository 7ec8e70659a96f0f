"""Average and Lp pooling against PyTorch on random geometries, forward and backward.

Averages agree to float rounding; the divisor rules (count_include_pad, the ceil_mode
overhang that never counts, divisor_override) are exercised by the random geometries
and pinned down by the crafted cases at the end.
"""
import numpy as np
import pytest

import ndpool
from oracle import check, random_shape, random_sliding, tie_free

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _tuple(value, rank):
    return (value,) * rank if isinstance(value, int) else tuple(value)


def torch_avg(rank, geometry, count_include_pad, divisor_override):
    kw = dict(geometry, count_include_pad=count_include_pad)
    if rank > 1:
        return lambda t: getattr(F, f"avg_pool{rank}d")(t, divisor_override=divisor_override,
                                                        **kw)
    # avg_pool1d has no divisor_override: run the 1-D case as 2-D with a unit first dim
    k = _tuple(kw["kernel_size"], 1)[0]
    s = k if kw["stride"] is None else _tuple(kw["stride"], 1)[0]
    p = _tuple(kw["padding"], 1)[0]
    return lambda t: F.avg_pool2d(t.unsqueeze(-2), (1, k), (1, s), (0, p), kw["ceil_mode"],
                                  count_include_pad, divisor_override).squeeze(-2)


def _avg_case(seed, rank, salt):
    rng = np.random.default_rng([seed, rank, salt, 7])
    spatial, geometry = random_sliding(rng, rank, dilation=False, fit_kernel=rank == 3)
    channels_last = bool(rng.random() < 0.25)
    shape = random_shape(rng, rank, spatial, channels_last=channels_last,
                         batched=bool(rng.random() < 0.8))
    count_include_pad = bool(rng.random() < 0.5)
    divisor = None if rng.random() < 0.7 else int(rng.choice([-3, 1, 2, 5, 9]))
    kwargs = dict(geometry, count_include_pad=count_include_pad, divisor_override=divisor)
    if channels_last:
        kwargs["layout"] = "channels_last"
    return rng, shape, kwargs, torch_avg(rank, geometry, count_include_pad, divisor)


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_avg_random_geometry(backend, rank, dtype, seed):
    rng, shape, kwargs, torch_op = _avg_case(seed, rank, 0)
    x = rng.standard_normal(shape).astype(dtype)
    check(getattr(ndpool, f"avg_pool{rank}d"), torch_op, x, (), kwargs, backend=backend,
          seed=seed)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_avg_float16(backend, rank, seed):
    """float16 accumulates in float32; avg_pool3d has no float16 kernel in torch, so the
    oracle compares with torch's float32 result rounded to float16."""
    rng, shape, kwargs, torch_op = _avg_case(seed, rank, 1)
    x = rng.standard_normal(shape).astype(np.float16)
    check(getattr(ndpool, f"avg_pool{rank}d"), torch_op, x, (), kwargs, backend=backend,
          seed=seed)


def test_avg_divisor_rules_crafted(backend):
    x = np.arange(1.0, 6.0).reshape(1, 1, 5)          # 1 2 3 4 5
    with ndpool.use_backend(backend):
        # padding 1 on both sides; ceil_mode adds a window that overhangs on the right
        with_pad = ndpool.avg_pool1d(x, 3, 2, padding=1, ceil_mode=True)
        without = ndpool.avg_pool1d(x, 3, 2, padding=1, ceil_mode=True,
                                    count_include_pad=False)
        override = ndpool.avg_pool1d(x, 3, 2, padding=1, ceil_mode=True, divisor_override=2)
    # windows: [pad,1,2] [2,3,4] [4,5,pad]; the last has no overhang past the right pad
    np.testing.assert_allclose(with_pad[0, 0], [3 / 3, 9 / 3, 9 / 3])
    np.testing.assert_allclose(without[0, 0], [3 / 2, 9 / 3, 9 / 2])
    np.testing.assert_allclose(override[0, 0], [3 / 2, 9 / 2, 9 / 2])
    with ndpool.use_backend(backend):
        overhang = ndpool.avg_pool1d(np.arange(1.0, 5.0).reshape(1, 1, 4), 3, 2,
                                     ceil_mode=True)
    # windows [1,2,3] and [3,4,overhang]: the overhang never counts
    np.testing.assert_allclose(overhang[0, 0], [2.0, 3.5])


# ---------------------------------------------------------------------------- Lp
def _lp_case(seed, rank, salt):
    rng = np.random.default_rng([seed, rank, salt, 11])
    spatial, geometry = random_sliding(rng, rank, dilation=False, padding=False)
    shape = random_shape(rng, rank, spatial, batched=bool(rng.random() < 0.8))
    geometry.pop("padding")
    if rng.random() < 0.6:
        geometry["ceil_mode"] = True   # partial windows at the end
    return rng, shape, geometry


def torch_lp(rank, norm_type, geometry):
    kw = dict(geometry)
    if rank == 1:   # torch's lp_pool1d multiplies by kernel_size: it must be an int
        kw = {k: (v[0] if isinstance(v, tuple) else v) for k, v in kw.items()}
    return lambda t: getattr(F, f"lp_pool{rank}d")(t, norm_type, **kw)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("norm_type", [1, 2, 3, 1.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_lp_random_geometry(backend, rank, dtype, norm_type, seed):
    rng, shape, geometry = _lp_case(seed, rank, 0)
    x = tie_free(rng, shape, dtype, positive=True)
    torch_op = torch_lp(rank, norm_type, geometry)
    check(getattr(ndpool, f"lp_pool{rank}d"), torch_op, x, (norm_type,), geometry,
          backend=backend, seed=seed, scale=4)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("norm_type", [1, 2, 3, 1.5])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_lp_float16(backend, rank, norm_type, seed):
    rng, shape, geometry = _lp_case(seed, rank, 1)
    x = tie_free(rng, shape, np.float16, positive=True)
    torch_op = torch_lp(rank, norm_type, geometry)
    check(getattr(ndpool, f"lp_pool{rank}d"), torch_op, x, (norm_type,), geometry,
          backend=backend, seed=seed, scale=4)


def test_lp_partial_window_crafted(backend):
    """PyTorch's Lp of a ceil_mode partial window is (mean of x**p * kernel volume)**(1/p),
    i.e. the overhang counts as zeros only through the divisor rule."""
    x = np.array([[[1.0, 2.0, 3.0]]])
    with ndpool.use_backend(backend):
        y = ndpool.lp_pool1d(x, 2, 2, ceil_mode=True)
    np.testing.assert_allclose(y[0, 0], [np.sqrt(5.0), np.sqrt(9.0 / 1 * 2)])
