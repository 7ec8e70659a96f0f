"""Adaptive and fractional max/avg pooling against PyTorch, forward, indices, backward.

Fractional pooling gets PyTorch's ``_random_samples`` as ndpool's ``samples`` (same
dtype), so both draw the same pseudo-random windows. Gradient checks use tie-free inputs.
"""
import numpy as np
import pytest

import ndpool
from oracle import check, tie_free

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _adaptive_case(seed, rank, salt):
    rng = np.random.default_rng([seed, rank, salt, 13])
    spatial = tuple(int(v) for v in rng.integers(1, 11 if rank < 3 else 8, size=rank))
    # output smaller and larger than the input (adaptive windows then overlap/repeat)
    out = [int(rng.integers(1, 2 * s + 2)) for s in spatial]
    if rank > 1 and rng.random() < 0.2:
        out[0] = None            # keep that dim's input size
    output_size = out[0] if len(set(out)) == 1 and rng.random() < 0.5 else tuple(out)
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    shape = ((n,) if rng.random() < 0.8 else ()) + (c,) + spatial
    return rng, shape, output_size


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_adaptive_max(backend, rank, dtype, seed):
    rng, shape, output_size = _adaptive_case(seed, rank, 0)
    x = tie_free(rng, shape, dtype)
    torch_op = lambda t: getattr(F, f"adaptive_max_pool{rank}d")(t, output_size, True)
    check(getattr(ndpool, f"adaptive_max_pool{rank}d"), torch_op, x, (output_size,),
          dict(return_indices=True), backend=backend, exact=True, seed=seed)


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_adaptive_avg(backend, rank, dtype, seed):
    rng, shape, output_size = _adaptive_case(seed, rank, 1)
    x = rng.standard_normal(shape).astype(dtype)
    torch_op = lambda t: getattr(F, f"adaptive_avg_pool{rank}d")(t, output_size)
    check(getattr(ndpool, f"adaptive_avg_pool{rank}d"), torch_op, x, (output_size,),
          backend=backend, seed=seed)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_adaptive_ties_nan_and_float16(backend, rank, seed):
    rng, shape, output_size = _adaptive_case(seed, rank, 2)
    x = rng.integers(0, 3, size=shape).astype(np.float16)
    x[rng.random(shape) < 0.1] = np.nan
    torch_op = lambda t: getattr(F, f"adaptive_max_pool{rank}d")(t, output_size, True)
    check(getattr(ndpool, f"adaptive_max_pool{rank}d"), torch_op, x, (output_size,),
          dict(return_indices=True), backend=backend, exact=True, seed=seed)
    y = rng.standard_normal(shape).astype(np.float16)
    torch_avg = lambda t: getattr(F, f"adaptive_avg_pool{rank}d")(t, output_size)
    check(getattr(ndpool, f"adaptive_avg_pool{rank}d"), torch_avg, y, (output_size,),
          backend=backend, seed=seed)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32])
def test_adaptive_max_integers(backend, dtype):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 200, size=(2, 3, 7, 5)).astype(dtype)
    torch_op = lambda t: F.adaptive_max_pool2d(t, (3, 4), True)
    check(ndpool.adaptive_max_pool2d, torch_op, x, ((3, 4),), dict(return_indices=True),
          backend=backend, exact=True)


# -------------------------------------------------------------------- fractional
def _fractional_case(seed, rank, salt, dtype):
    rng = np.random.default_rng([seed, rank, salt, 17])
    kernel = [int(rng.integers(1, 4)) for _ in range(rank)]
    # torch's 3-D op wants out + kernel - 1 < in (its 2-D op and ndpool allow <=)
    strict = int(rank == 3)
    spatial = tuple(int(rng.integers(k + strict, 13 if rank == 2 else 8)) for k in kernel)
    out = tuple(int(rng.integers(1, s - k + 2 - strict)) for s, k in zip(spatial, kernel))
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    batched = bool(rng.random() < 0.8)
    shape = ((n,) if batched else ()) + (c,) + spatial
    samples = rng.random(((n if batched else 1), c, rank)).astype(dtype)
    kernel_size = kernel[0] if len(set(kernel)) == 1 else tuple(kernel)
    return rng, shape, kernel_size, out, samples


def _check_fractional(backend, rank, x, kernel, samples, seed, **size):
    """ndpool's fractional pool against torch's, sharing torch's random samples;
    ``size`` is output_size=... or output_ratio=..."""
    torch_op = lambda t: getattr(F, f"fractional_max_pool{rank}d")(
        t, kernel, return_indices=True, _random_samples=torch.from_numpy(samples), **size)
    check(getattr(ndpool, f"fractional_max_pool{rank}d"), torch_op, x, (kernel,),
          dict(return_indices=True, samples=samples, **size), backend=backend,
          exact=True, seed=seed)


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rank", [2, 3])
def test_fractional_output_size(backend, rank, dtype, seed):
    rng, shape, kernel, out, samples = _fractional_case(seed, rank, 0, dtype)
    x = tie_free(rng, shape, dtype)
    _check_fractional(backend, rank, x, kernel, samples, seed, output_size=out)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("rank", [2, 3])
def test_fractional_output_ratio(backend, rank, seed):
    rng, shape, kernel, _, samples = _fractional_case(seed, rank, 1, np.float64)
    spatial = shape[-rank:]
    ks = (kernel,) * rank if isinstance(kernel, int) else kernel
    # ratios whose int(size * ratio) stays in [1, size - kernel + 1]
    strict = int(rank == 3)
    spatial = tuple(s + 1 for s in spatial)   # room for a ratio below one
    shape = shape[:-rank] + spatial
    wanted = [int(rng.integers(1, min(s - k + 1 - strict, s - 1) + 1))
              for s, k in zip(spatial, ks)]
    ratio = tuple((o + 0.5) / s for o, s in zip(wanted, spatial))   # int(s * r) == o
    assert all(int(s * r) == o for s, r, o in zip(spatial, ratio, wanted))
    x = tie_free(rng, shape)
    _check_fractional(backend, rank, x, kernel, samples, seed, output_ratio=ratio)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rank", [2, 3])
def test_fractional_float16_and_nan(backend, rank, seed):
    rng, shape, kernel, out, samples = _fractional_case(seed, rank, 2, np.float16)
    x = tie_free(rng, shape, np.float16)
    x[rng.random(shape) < 0.1] = np.nan
    _check_fractional(backend, rank, x, kernel, samples, seed, output_size=out)


def test_fractional_rng_is_reproducible(backend):
    x = tie_free(np.random.default_rng(1), (2, 3, 9, 9))
    with ndpool.use_backend(backend):
        a = ndpool.fractional_max_pool2d(x, 2, output_size=4, rng=7, return_indices=True)
        b = ndpool.fractional_max_pool2d(x, 2, output_size=4, rng=7, return_indices=True)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].shape == (2, 3, 4, 4)


def test_fractional_unbatched_samples_shapes(backend):
    """Unbatched input takes samples of shape (C, dims) or (1, C, dims), same windows."""
    rng = np.random.default_rng(8)
    x = tie_free(rng, (3, 9, 8))
    u = rng.random((3, 2))
    with ndpool.use_backend(backend):
        a = ndpool.fractional_max_pool2d(x, 2, output_size=4, samples=u, return_indices=True)
        b = ndpool.fractional_max_pool2d(x, 2, output_size=4, samples=u[None],
                                         return_indices=True)
        c = ndpool.fractional_max_pool2d(x[None], 2, output_size=4, samples=u[None],
                                         return_indices=True)
    for got in (b, (c[0][0], c[1][0])):
        np.testing.assert_array_equal(a[0], got[0])
        np.testing.assert_array_equal(a[1], got[1])
