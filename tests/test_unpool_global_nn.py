"""Max unpooling, the global pools and the nn layers against PyTorch and against vjp.

Unpooling is fed PyTorch's own pooled values and indices; gradients are with respect
to the unpooled values. Global max gradients use tie-free inputs (torch's amax shares
the gradient among ties, ndpool gives it to the first).
"""
import numpy as np
import pytest

import ndpool
from oracle import check, random_sliding, tie_free

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _unpool_case(seed, rank, salt):
    """Pooled values and indices from torch, plus a valid unpool geometry."""
    rng = np.random.default_rng([seed, rank, salt, 19])
    while True:
        spatial, geometry = random_sliding(rng, rank, dilation=False)
        geometry["ceil_mode"] = False
        stride = geometry["stride"] if geometry["stride"] is not None else geometry[
            "kernel_size"]
        k, s, p = (tuple(v) if isinstance(v, tuple) else (v,) * rank
                   for v in (geometry["kernel_size"], stride, geometry["padding"]))
        pooled = [(n + 2 * pp - kk) // ss + 1 for n, kk, ss, pp in zip(spatial, k, s, p)]
        default = [(o - 1) * ss - 2 * pp + kk for o, ss, pp, kk in zip(pooled, s, p, k)]
        if all(d - ss < n < d + ss for d, n, ss in zip(default, spatial, s)):
            break
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    x = tie_free(rng, (n, c) + spatial)
    y, idx = getattr(F, f"max_pool{rank}d")(torch.from_numpy(x), return_indices=True,
                                            **geometry)
    if tuple(default) == spatial and rng.random() < 0.5:
        output_size = None
    elif rng.random() < 0.5:
        output_size = (n, c) + spatial    # torch also takes the full shape
    else:
        output_size = spatial
    geometry.pop("ceil_mode")
    return rng, y.numpy(), idx.numpy(), geometry, output_size


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_max_unpool(backend, rank, dtype, seed):
    rng, y, idx, geometry, output_size = _unpool_case(seed, rank, 0)
    kernel = geometry.pop("kernel_size")
    y = y.astype(dtype)
    torch_op = lambda t: getattr(F, f"max_unpool{rank}d")(
        t, torch.from_numpy(idx), kernel, output_size=output_size, **geometry)
    out, _ = check(getattr(ndpool, f"max_unpool{rank}d"), torch_op, y, (idx, kernel),
                   dict(geometry, output_size=output_size), backend=backend, exact=True,
                   seed=seed)
    # round trip: unpooling puts every pooled value back where it came from
    flat = out.reshape(out.shape[:2] + (-1,))
    np.testing.assert_array_equal(np.take_along_axis(flat, idx.reshape(idx.shape[:2] + (-1,)),
                                                     axis=2).reshape(y.shape), y)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64, np.float16])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_max_unpool_other_dtypes(backend, rank, dtype):
    """Integer and float16 values keep their dtype (torch on a float64 copy for ints)."""
    rng, y, idx, geometry, output_size = _unpool_case(rank, rank, 1)
    kernel = geometry.pop("kernel_size")
    y = (np.abs(y) * 4).astype(dtype)
    torch_op = lambda t: getattr(F, f"max_unpool{rank}d")(
        t, torch.from_numpy(idx), kernel, output_size=output_size, **geometry)
    check(getattr(ndpool, f"max_unpool{rank}d"), torch_op, y, (idx, kernel),
          dict(geometry, output_size=output_size), backend=backend, exact=True)


def test_max_unpool_unbatched(backend):
    x = tie_free(np.random.default_rng(2), (3, 6, 7))
    with ndpool.use_backend(backend):
        y, idx = ndpool.max_pool2d(x, 2, return_indices=True)
        z = ndpool.max_unpool2d(y, idx, 2, output_size=(6, 7))
    expected = F.max_unpool2d(torch.from_numpy(y), torch.from_numpy(idx), 2,
                              output_size=(6, 7)).numpy()
    np.testing.assert_array_equal(z, expected)


# ------------------------------------------------------------------- global pools
GLOBAL_SHAPES = [(2, 3, 5), (1, 2, 4, 3), (2, 1, 3, 2, 4), (3, 2, 1, 1), (1, 1, 2, 2, 2, 2)]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape", GLOBAL_SHAPES)
def test_global_max(backend, shape, dtype, keepdims):
    x = tie_free(np.random.default_rng(len(shape)), shape, dtype)
    dims = tuple(range(2, len(shape)))
    torch_op = lambda t: torch.amax(t, dim=dims, keepdim=keepdims)
    check(ndpool.global_max_pool, torch_op, x, (), dict(keepdims=keepdims),
          backend=backend, exact=True)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape", GLOBAL_SHAPES)
def test_global_avg(backend, shape, dtype, keepdims):
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(dtype)
    dims = tuple(range(2, len(shape)))
    torch_op = lambda t: torch.mean(t.float() if t.dtype == torch.float16 else t,
                                    dim=dims, keepdim=keepdims).to(t.dtype)
    check(ndpool.global_avg_pool, torch_op, x, (), dict(keepdims=keepdims), backend=backend)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.uint64])
def test_global_max_integers_keep_dtype(backend, dtype):
    info = np.iinfo(dtype)
    x = np.random.default_rng(0).integers(info.min, info.max, size=(2, 3, 4, 5),
                                          dtype=dtype, endpoint=True)
    x[0, 0, 1, 1] = info.max
    with ndpool.use_backend(backend):
        y = ndpool.global_max_pool(x)
    assert y.dtype == dtype and y.shape == (2, 3)
    np.testing.assert_array_equal(y, x.max(axis=(2, 3)))


def test_global_max_ties_give_the_gradient_to_the_first(backend):
    x = np.array([[[2.0, 5.0, 5.0, 1.0]]])
    with ndpool.use_backend(backend):
        y, pullback = ndpool.vjp(ndpool.global_max_pool, x)
        np.testing.assert_array_equal(pullback(np.array([[3.0]])), [[[0, 3.0, 0, 0]]])


# ---------------------------------------------------------------------- nn layers
LAYERS = [
    ("MaxPool1d", (3,), dict(stride=2, padding=1), (2, 3, 9)),
    ("MaxPool2d", ((3, 2),), dict(stride=(2, 1), dilation=(1, 2), ceil_mode=True), (2, 3, 8, 7)),
    ("MaxPool3d", (2,), dict(return_indices=True), (1, 2, 4, 5, 4)),
    ("MinPool2d", (3,), dict(stride=2, padding=1), (2, 3, 8, 7)),
    ("MinPool3d", (2,), dict(ties="split"), (1, 2, 4, 4, 4)),
    ("AvgPool1d", (3,), dict(stride=2, padding=1, count_include_pad=False), (2, 3, 9)),
    ("AvgPool2d", (3,), dict(stride=2, ceil_mode=True, divisor_override=4), (2, 3, 8, 7)),
    ("AvgPool3d", (2,), dict(layout="channels_last"), (1, 4, 4, 4, 3)),
    ("LPPool1d", (2, 3), dict(stride=2), (2, 3, 9)),
    ("LPPool2d", (1.5, 2), dict(ceil_mode=True), (2, 3, 7, 7)),
    ("LPPool3d", (3, 2), {}, (1, 2, 4, 4, 4)),
    ("AdaptiveMaxPool1d", (4,), {}, (2, 3, 9)),
    ("AdaptiveMaxPool2d", ((3, 5),), dict(return_indices=True), (2, 3, 8, 7)),
    ("AdaptiveMaxPool3d", (2,), {}, (1, 2, 4, 5, 4)),
    ("AdaptiveAvgPool1d", (4,), {}, (2, 3, 9)),
    ("AdaptiveAvgPool2d", ((3, 9),), {}, (2, 3, 8, 7)),
    ("AdaptiveAvgPool3d", (3,), {}, (1, 2, 4, 5, 4)),
    ("FractionalMaxPool2d", (2,), dict(output_size=3, rng=0), (2, 3, 8, 7)),
    ("FractionalMaxPool3d", (2,), dict(output_ratio=0.5, rng=1), (1, 2, 6, 6, 6)),
    ("GlobalMaxPool", (), {}, (2, 3, 5, 4)),
    ("GlobalAvgPool", (), dict(keepdims=True), (2, 3, 5, 4)),
]


@pytest.mark.parametrize("name, args, kwargs, shape", LAYERS, ids=[l[0] for l in LAYERS])
def test_layer_forward_backward_equal_vjp(backend, name, args, kwargs, shape):
    rng = np.random.default_rng(0)
    x = tie_free(rng, shape, positive=name.startswith("LP"))
    layer = getattr(ndpool.nn, name)(*args, **kwargs)
    op = type(layer).op
    with ndpool.use_backend(backend):
        y = layer.forward(x)
        expected, pullback = ndpool.vjp(op, x, *args, **kwargs)
        out = y[0] if isinstance(y, tuple) else y
        dy = rng.standard_normal(out.shape)
        dx = layer.backward(dy)
        np.testing.assert_array_equal(dx, pullback(dy))
        np.testing.assert_array_equal(layer(x) if not isinstance(y, tuple) else layer(x)[0],
                                      out)
    if isinstance(y, tuple):
        for a, b in zip(y, expected):
            np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_array_equal(y, expected)
    assert dx.shape == x.shape


def test_layer_backward_uses_the_latest_forward(backend):
    layer = ndpool.nn.MaxPool2d(2)
    rng = np.random.default_rng(1)
    a, b = tie_free(rng, (1, 1, 4, 4)), tie_free(rng, (1, 1, 6, 6))
    with ndpool.use_backend(backend):
        layer.forward(a)
        y = layer.forward(b)
        dx = layer.backward(np.ones_like(y))
        _, pullback = ndpool.vjp(ndpool.max_pool2d, b, 2)
    np.testing.assert_array_equal(dx, pullback(np.ones_like(y)))


def test_unpool_layer_matches_torch(backend):
    rng = np.random.default_rng(4)
    x = tie_free(rng, (2, 3, 7, 6))
    pool, unpool = ndpool.nn.MaxPool2d(2, return_indices=True), ndpool.nn.MaxUnpool2d(2)
    t_unpool = torch.nn.MaxUnpool2d(2)
    with ndpool.use_backend(backend):
        y, idx = pool(x)
        z = unpool(y, idx, output_size=(7, 6))
        dy = rng.standard_normal(z.shape)
        dyz = unpool.backward(dy)
    ty = torch.from_numpy(y).requires_grad_()
    tz = t_unpool(ty, torch.from_numpy(idx), output_size=(7, 6))
    tz.backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(z, tz.detach().numpy())
    np.testing.assert_array_equal(dyz, ty.grad.numpy())


@pytest.mark.parametrize("name, torch_name, args", [
    ("MaxPool2d", "MaxPool2d", (3, 2, 1)), ("AvgPool2d", "AvgPool2d", (3, 2, 1)),
    ("LPPool2d", "LPPool2d", (2, 3, 2)), ("AdaptiveAvgPool2d", "AdaptiveAvgPool2d", (3,)),
    ("AdaptiveMaxPool2d", "AdaptiveMaxPool2d", ((2, 4),)),
])
def test_layer_matches_torch_layer(backend, name, torch_name, args):
    """Constructor arguments in torch.nn's order mean the same thing (tie-free input)."""
    rng = np.random.default_rng(3)
    x = tie_free(rng, (2, 3, 8, 9), positive=True)
    layer, t_layer = getattr(ndpool.nn, name)(*args), getattr(torch.nn, torch_name)(*args)
    with ndpool.use_backend(backend):
        y = layer(x)
        dy = rng.standard_normal(y.shape)
        dx = layer.backward(dy)
    t = torch.from_numpy(x.copy()).requires_grad_()
    ty = t_layer(t)
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx, t.grad.numpy(), rtol=1e-11, atol=1e-12)
