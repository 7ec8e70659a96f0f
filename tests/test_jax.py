"""ndpool.jax against the NumPy ops: forward, gradients, jit, vmap, errors.

The bridge runs the core as an XLA custom call; the NumPy ops (already checked against
PyTorch) are the oracle, so results must be equal bit for bit for max/min/indices and
to rounding for means. Gradient inputs are tie-free (distinct values).
"""
import os

import numpy as np
import pytest

import ndpool

if os.environ.get("NDPOOL_CI_INSTALL"):   # CI installs the bridge: it must be there
    import jax  # noqa: F401
    import ndpool_jax_ffi  # noqa: F401
jax = pytest.importorskip("jax")
pytest.importorskip("ndpool_jax_ffi", reason="the XLA FFI handler: pip install ./jax-ffi")
import jax.numpy as jnp  # noqa: E402

import ndpool.jax as nj  # noqa: E402

RNG = np.random.default_rng(7)


def distinct(shape, dtype=np.float32):
    """Tie-free values, so that every window has one winner."""
    return (RNG.permutation(int(np.prod(shape))).reshape(shape) / 7.0 - 3).astype(dtype)


def as_np(a):
    return np.asarray(a)


CASES = [  # (op name, x shape, positional args, keyword args)
    ("max_pool1d", (2, 3, 11), (3,), dict(stride=2, padding=1)),
    ("max_pool2d", (2, 3, 9, 10), (3,), dict(stride=2, padding=1, ceil_mode=True)),
    ("max_pool2d", (3, 8, 8), (2,), {}),
    ("max_pool2d", (2, 3, 12, 12), (5,), dict(stride=1, padding=2)),
    ("max_pool2d", (2, 3, 9, 9), (3,), dict(dilation=2, padding="same")),
    ("max_pool3d", (1, 2, 6, 7, 8), (2,), dict(stride=(1, 2, 2))),
    ("min_pool2d", (2, 3, 9, 10), (3,), dict(stride=2)),
    ("min_pool3d", (1, 2, 5, 6, 7), (3,), dict(stride=2, padding=1)),
    ("avg_pool1d", (2, 3, 11), (4,), dict(stride=3, padding=2, ceil_mode=True)),
    ("avg_pool2d", (2, 3, 9, 10), (3,), dict(stride=2, padding=1, count_include_pad=False)),
    ("avg_pool2d", (2, 3, 9, 10), (3,), dict(divisor_override=5)),
    ("avg_pool3d", (1, 2, 6, 7, 8), (2,), {}),
    ("lp_pool1d", (2, 3, 12), (2.0, 3), {}),
    ("lp_pool2d", (2, 3, 9, 10), (3.0, 2), dict(stride=1)),
    ("adaptive_max_pool1d", (2, 3, 11), (4,), {}),
    ("adaptive_max_pool2d", (2, 3, 9, 10), ((4, 3),), {}),
    ("adaptive_max_pool3d", (1, 2, 6, 7, 8), (3,), {}),
    ("adaptive_avg_pool2d", (2, 3, 9, 10), ((4, 3),), {}),
    ("adaptive_avg_pool3d", (1, 2, 6, 7, 8), (2,), {}),
    ("global_max_pool", (2, 3, 5, 6), (), {}),
    ("global_avg_pool", (2, 3, 5, 6, 2), (), dict(keepdims=True)),
]


def positive_for_lp(name, x):
    return np.abs(x) + 0.5 if name.startswith("lp_") else x


@pytest.mark.parametrize("name,shape,args,kwargs", CASES, ids=lambda c: str(c))
def test_forward_equals_numpy(name, shape, args, kwargs):
    x = positive_for_lp(name, distinct(shape))
    expected = getattr(ndpool, name)(x, *args, **kwargs)
    got = getattr(nj, name)(jnp.asarray(x), *args, **kwargs)
    assert isinstance(got, jax.Array) and got.dtype == x.dtype
    if name.startswith(("avg", "adaptive_avg", "global_avg", "lp")):
        np.testing.assert_allclose(as_np(got), expected, rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_array_equal(as_np(got), expected)


@pytest.mark.parametrize("name,shape,args,kwargs", CASES, ids=lambda c: str(c))
def test_jitted_gradient_equals_vjp(name, shape, args, kwargs):
    x = positive_for_lp(name, distinct(shape))
    y, pullback = ndpool.vjp(getattr(ndpool, name), x, *args, **kwargs)
    dy = RNG.standard_normal(y.shape).astype(np.float32)
    op = getattr(nj, name)
    grad = jax.jit(jax.grad(lambda t: (op(t, *args, **kwargs) * dy).sum()))(jnp.asarray(x))
    np.testing.assert_allclose(as_np(grad), pullback(dy), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["max_pool2d", "min_pool2d", "adaptive_max_pool2d"])
def test_indices_equal_numpy(name):
    x = distinct((2, 3, 9, 10))
    args = ((4, 3),) if name.startswith("adaptive") else (3,)
    y, idx = getattr(nj, name)(jnp.asarray(x), *args, return_indices=True)
    y_np, idx_np = getattr(ndpool, name)(x, *args, return_indices=True)
    np.testing.assert_array_equal(as_np(y), y_np)
    np.testing.assert_array_equal(as_np(idx), idx_np)
    assert idx.dtype == jnp.int32   # JAX's integers without x64


def test_indices_are_int64_with_x64():
    x = distinct((2, 3, 9, 10), np.float64)
    with jax.enable_x64(True):
        y, idx = nj.max_pool2d(jnp.asarray(x), 3, stride=2, return_indices=True)
        assert idx.dtype == jnp.int64
        np.testing.assert_array_equal(as_np(idx), ndpool.max_pool2d(x, 3, stride=2,
                                                                    return_indices=True)[1])


def test_column_major_indices():
    x = distinct((2, 3, 7, 9))
    got = nj.max_pool2d(jnp.asarray(x), 3, return_indices=True, storage_order=1)[1]
    expected = ndpool.max_pool2d(x, 3, return_indices=True, storage_order=1)[1]
    np.testing.assert_array_equal(as_np(got), expected)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.uint8, np.int16])
def test_dtypes(dtype):
    x = (distinct((2, 3, 8, 8), np.float64) * 10).astype(dtype) if np.dtype(dtype).kind != "f" \
        else distinct((2, 3, 8, 8), dtype)
    with jax.enable_x64(np.dtype(dtype) == np.float64):
        got = nj.max_pool2d(jnp.asarray(x), 2)
        assert got.dtype == x.dtype
        np.testing.assert_array_equal(as_np(got), ndpool.max_pool2d(x, 2))


def test_channels_last_layout():
    x = distinct((2, 9, 10, 4))
    for name, args in (("max_pool2d", (3,)), ("avg_pool2d", (3,)),
                       ("adaptive_max_pool2d", (2,))):
        got = getattr(nj, name)(jnp.asarray(x), *args, layout="channels_last")
        expected = getattr(ndpool, name)(x, *args, layout="channels_last")
        np.testing.assert_allclose(as_np(got), expected, rtol=1e-6)
        y, pullback = ndpool.vjp(getattr(ndpool, name), x, *args, layout="channels_last")
        grad = jax.grad(lambda t: getattr(nj, name)(t, *args, layout="channels_last").sum())(
            jnp.asarray(x))
        np.testing.assert_allclose(as_np(grad), pullback(np.ones_like(y)), rtol=1e-6)


def test_ties_split_shares_the_gradient():
    grad = jax.grad(lambda t: nj.max_pool2d(t, 2, ties="split").sum())(jnp.ones((1, 1, 4, 4)))
    np.testing.assert_array_equal(as_np(grad), np.full((1, 1, 4, 4), 0.25, np.float32))


def test_vmap_equals_a_loop():
    x = distinct((4, 2, 3, 9, 10))
    batched = jax.vmap(lambda t: nj.max_pool2d(t, 3, stride=2))(jnp.asarray(x))
    for i in range(4):
        np.testing.assert_array_equal(as_np(batched[i]), ndpool.max_pool2d(x[i], 3, stride=2))
    grads = jax.vmap(jax.grad(lambda t: nj.avg_pool2d(t, 3).sum()))(jnp.asarray(x))
    for i in range(4):
        y, pullback = ndpool.vjp(ndpool.avg_pool2d, x[i], 3)
        np.testing.assert_allclose(as_np(grads[i]), pullback(np.ones_like(y)), rtol=1e-6)


def test_finite_differences_in_float64():
    from jax.test_util import check_grads
    x = distinct((1, 2, 7, 8), np.float64)
    with jax.enable_x64(True):
        for f, at in ((lambda t: nj.avg_pool2d(t, 3, stride=2, padding=1), x),
                      (lambda t: nj.max_pool2d(t, 3, stride=2), x),
                      (lambda t: nj.lp_pool2d(t, 2.0, 2), x - x.min() + 1)):   # smooth: x > 0
            check_grads(f, (jnp.asarray(at),), order=1, modes=["rev"], eps=1e-4)


def test_unpool_round_trip_and_gradient():
    x = distinct((2, 3, 8, 8))
    y, idx = ndpool.max_pool2d(x, 2, return_indices=True)
    for index in (idx.astype(np.int32), idx):
        got = nj.max_unpool2d(jnp.asarray(y), jnp.asarray(index), 2)
        np.testing.assert_array_equal(as_np(got), ndpool.max_unpool2d(y, idx, 2))
    dy = distinct((2, 3, 8, 8))
    grad = jax.grad(lambda t: (nj.max_unpool2d(t, jnp.asarray(idx.astype(np.int32)), 2)
                               * dy).sum())(jnp.asarray(y))
    _, pullback = ndpool.vjp(ndpool.max_unpool2d, y, idx, 2)
    np.testing.assert_array_equal(as_np(grad), pullback(dy))


def test_unpool_checks_traced_indices_when_it_runs():
    y = jnp.ones((1, 1, 2, 2))
    bad = jnp.array([[[[0, 1], [2, 99]]]], jnp.int32)
    with pytest.raises(Exception, match=r"indices must lie in \[0, 16\)"):
        jax.jit(lambda a, b: nj.max_unpool2d(a, b, 2))(y, bad).block_until_ready()


def test_fractional_with_fixed_samples():
    x = distinct((2, 3, 12, 12))
    samples = RNG.random((2, 3, 2)).astype(np.float32)
    got = nj.fractional_max_pool2d(jnp.asarray(x), 2, output_size=5, samples=samples)
    np.testing.assert_array_equal(as_np(got), ndpool.fractional_max_pool2d(
        x, 2, output_size=5, samples=samples))
    with pytest.raises(TypeError, match="samples must be known when the call is traced"):
        jax.jit(lambda t, s: nj.fractional_max_pool2d(t, 2, output_size=5, samples=s))(
            jnp.asarray(x), jnp.asarray(samples))


def test_no_python_callback_in_the_program():
    text = jax.jit(lambda t: nj.max_pool2d(t, 2)).lower(jnp.ones((2, 3, 8, 8))).as_text()
    assert "custom_call @ndpool_run" in text
    assert "callback" not in text


def test_errors_name_the_op():
    x = jnp.ones((1, 1, 4, 4))
    with pytest.raises(TypeError, match="ndpool.jax.max_pool2d: .*strid"):
        nj.max_pool2d(x, 2, strid=2)
    with pytest.raises(ValueError, match="max_pool2d: padding=3 must be at most half"):
        nj.max_pool2d(x, 4, padding=3)
    with pytest.raises(TypeError, match="ndpool.jax.avg_pool2d: x has dtype int32"):
        nj.avg_pool2d(jnp.ones((1, 1, 4, 4), jnp.int32), 2)
    with pytest.raises(TypeError, match="x has dtype bfloat16"):
        nj.max_pool2d(jnp.ones((1, 1, 4, 4), jnp.bfloat16), 2)
    with pytest.raises(TypeError, match="x must be a JAX array, got list"):
        nj.max_pool2d([[1.0]], 2)


def test_every_numpy_op_with_a_rank_is_bridged():
    bridged = set(nj.__all__)
    families = ("max_pool", "min_pool", "avg_pool", "lp_pool", "adaptive_max_pool",
                "adaptive_avg_pool", "fractional_max_pool", "max_unpool")
    expected = {n for n in ndpool.functional.__all__ if n.startswith(families)}
    assert expected | {"global_max_pool", "global_avg_pool"} <= bridged
