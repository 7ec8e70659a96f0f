"""The pooling variants beyond the frameworks (issue 12): stochastic, GeM, blur, max-blur
and spatial pyramid pooling, and ``vjp(..., wrt=...)``.

Oracles: PyTorch autograd of each op's closed form (F.pad + a depthwise convolution with
the binomial weights for the blur; avg pools for stochastic pooling's evaluation mean;
the clamp-power-mean for GeM; adaptive pools for the pyramid), kornia's BlurPool2D where
it is installed, a plain loop for stochastic pooling's draws plus a statistical test of
their frequencies, and central finite differences for the smooth ops.
"""
import itertools
import math

import numpy as np
import pytest

import ndpool
from oracle import assert_close, tie_free

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def numeric_gradient(f, x, eps=1e-6):
    """Central differences of the scalar ``f`` at float64 ``x`` (a copy is perturbed)."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        saved = x[i]
        x[i] = saved + eps
        upper = f(x)
        x[i] = saved - eps
        lower = f(x)
        x[i] = saved
        grad[i] = (upper - lower) / (2 * eps)
    return grad


def torch_run(fn, x, dy, *extra):
    """``fn(tensor(x), *extra tensors)`` with autograd: (y, dx, d_extra...) as NumPy."""
    t = torch.tensor(x, requires_grad=True)
    others = [torch.tensor(e, requires_grad=True) for e in extra]
    y = fn(t, *others)
    y.backward(torch.tensor(dy))
    return (y.detach().numpy(), t.grad.numpy()) + tuple(o.grad.numpy() for o in others)


# ----------------------------------------------------------------- vjp(wrt=...)
def test_wrt_default_single_name_and_tuple_order():
    x = np.random.default_rng(0).random((2, 3, 4, 5)) + 0.1
    dy = np.random.default_rng(1).standard_normal((2, 3))
    y, pullback = ndpool.vjp(ndpool.global_gem_pool, x, p=2.5)
    dx = pullback(dy)
    _, both = ndpool.vjp(ndpool.global_gem_pool, x, p=2.5, wrt=("x", "p"))
    dx2, dp = both(dy)
    _, reversed_pair = ndpool.vjp(ndpool.global_gem_pool, x, p=2.5, wrt=("p", "x"))
    dp3, dx3 = reversed_pair(dy)
    _, only_p = ndpool.vjp(ndpool.global_gem_pool, x, p=2.5, wrt="p")
    np.testing.assert_array_equal(dx, dx2)
    np.testing.assert_array_equal(dx, dx3)
    np.testing.assert_array_equal(dp, dp3)
    np.testing.assert_array_equal(only_p(dy), dp)
    assert dx.shape == x.shape and dp.shape == ()
    np.testing.assert_array_equal(y, ndpool.global_gem_pool(x, p=2.5))


def test_wrt_on_an_op_differentiable_in_x_alone():
    x = tie_free(np.random.default_rng(2), (1, 2, 6, 6))
    y, plain = ndpool.vjp(ndpool.max_pool2d, x, 2)
    _, single = ndpool.vjp(ndpool.max_pool2d, x, 2, wrt="x")
    _, pair = ndpool.vjp(ndpool.max_pool2d, x, 2, wrt=("x",))
    dy = np.ones_like(y)
    result = pair(dy)
    assert isinstance(result, tuple) and len(result) == 1
    np.testing.assert_array_equal(result[0], plain(dy))
    np.testing.assert_array_equal(single(dy), plain(dy))
    assert not hasattr(ndpool.max_pool2d, "_ndpool_wrt")
    assert ndpool.global_gem_pool._ndpool_wrt == ("x", "p")


@pytest.mark.parametrize("op, wrt, kind, message", [
    (ndpool.global_gem_pool, "eps", ValueError,
     r"^vjp: wrt='eps' is not one of 'x', 'p' for global_gem_pool$"),
    (ndpool.max_pool2d, "p", ValueError, r"^vjp: wrt='p' is not one of 'x' for max_pool2d$"),
    (ndpool.global_gem_pool, ("x", "x"), ValueError, r"vjp: wrt=\('x', 'x'\) names an argument twice"),
    (ndpool.global_gem_pool, ["x", "p"], TypeError, r"vjp: wrt=\['x', 'p'\] must be an argument name"),
    (ndpool.global_gem_pool, (), TypeError, r"vjp: wrt=\(\) must be"),
    (ndpool.global_gem_pool, 1, TypeError, r"vjp: wrt=1 must be"),
])
def test_wrt_errors(op, wrt, kind, message):
    x = np.ones((1, 1, 4, 4))
    with pytest.raises(kind, match=message):
        ndpool.vjp(op, x, 2, wrt=wrt) if op is ndpool.max_pool2d else ndpool.vjp(op, x, wrt=wrt)


# -------------------------------------------------------------- stochastic pooling
def loop_stochastic(x, kernel, stride, uniform):
    """The draw written as a loop: per window, the first cell (row-major) whose running
    sum passes ``u * sum``; returns y and, per window, the flat index drawn (-1: none)."""
    planes = x.reshape((-1,) + x.shape[-len(kernel):])
    spatial = planes.shape[1:]
    out = tuple((n - k) // s + 1 for n, k, s in zip(spatial, kernel, stride))
    u = uniform.reshape((len(planes),) + out)
    y = np.zeros(u.shape, x.dtype)
    picked = np.full(u.shape, -1)
    for p in range(len(planes)):
        for o in itertools.product(*map(range, out)):
            cells = [tuple(oi * s + ki for oi, s, ki in zip(o, stride, k))
                     for k in itertools.product(*map(range, kernel))]
            values = [float(planes[(p,) + c]) for c in cells]
            total = 0.0
            for v in values:
                total += v
            if total == 0:
                continue
            threshold, running = u[(p,) + o] * total, 0.0
            for c, v in zip(cells, values):
                running += v
                if running > threshold:
                    y[(p,) + o] = v
                    picked[(p,) + o] = np.ravel_multi_index(c, spatial)
                    break
    return y.reshape(x.shape[:-len(kernel)] + out), picked


@pytest.mark.parametrize("rank, shape, kernel, stride", [
    (2, (2, 3, 7, 8), 2, None), (2, (1, 2, 9, 9), 3, 2), (2, (3, 6, 5), (2, 3), (1, 2)),
    (3, (1, 2, 5, 6, 4), 2, None), (3, (2, 1, 4, 5, 6), (2, 3, 2), 1)])
def test_stochastic_draws_match_the_loop(rank, shape, kernel, stride):
    op = getattr(ndpool, f"stochastic_pool{rank}d")
    rng = np.random.default_rng(3)
    x = rng.random(shape)
    x[x < 0.2] = 0                        # zero cells are never drawn
    if len(shape) == rank + 2:
        x[0, 0] = 0                       # a plane of all-zero windows gives zeros
    y, pullback = ndpool.vjp(op, x, kernel, stride, rng=11)
    np.testing.assert_array_equal(op(x, kernel, stride, rng=11), y)   # same rng, same cells
    kernels = (kernel,) * rank if isinstance(kernel, int) else kernel
    strides = kernels if stride is None else ((stride,) * rank if isinstance(stride, int)
                                              else stride)
    uniform = np.random.default_rng(11).random(y.shape)
    expected, picked = loop_stochastic(x, kernels, strides, uniform)
    np.testing.assert_array_equal(y, expected)
    dy = rng.standard_normal(y.shape)
    dx = np.zeros((int(np.prod(x.shape[:-rank])), int(np.prod(x.shape[-rank:]))))
    flat_dy = dy.reshape(len(dx), -1)
    for p in range(len(dx)):
        for w, cell in enumerate(picked[p].ravel()):
            if cell >= 0:
                dx[p, cell] += flat_dy[p, w]
    np.testing.assert_allclose(pullback(dy), dx.reshape(x.shape), rtol=1e-15, atol=0)


def test_stochastic_draw_frequencies_follow_the_values():
    """40000 identical 2x2 windows (0, 1, 2, 5) / 8: each nonzero cell's share of the
    draws is within 5 binomial standard deviations of its probability (sd <= 0.0025;
    a correct sampler lands outside with probability below 1e-6 per cell, and the seed
    is fixed, so the test is deterministic); the zero cell is never drawn."""
    windows = 40_000
    x = np.tile(np.array([[0.0, 1.0], [2.0, 5.0]]), (1, windows))[None, None]
    y = ndpool.stochastic_pool2d(x, 2, rng=2024)
    assert y.shape == (1, 1, 1, windows)
    for value, probability in ((0.0, 0.0), (1.0, 1 / 8), (2.0, 2 / 8), (5.0, 5 / 8)):
        share = float((y == value).mean())
        sd = math.sqrt(probability * (1 - probability) / windows)
        assert abs(share - probability) <= 5 * sd, (value, share, probability)
    assert (y == 0).sum() == 0


def test_stochastic_rng_forms_and_fresh_draws():
    x = np.random.default_rng(4).random((2, 4, 8, 8))
    first = ndpool.stochastic_pool2d(x, 2, rng=5)
    np.testing.assert_array_equal(first, ndpool.stochastic_pool2d(x, 2, rng=5))
    generator = np.random.default_rng(5)
    np.testing.assert_array_equal(first, ndpool.stochastic_pool2d(x, 2, rng=generator))
    assert not np.array_equal(first, ndpool.stochastic_pool2d(x, 2, rng=generator))
    layer = ndpool.nn.StochasticPool2d(2, rng=5)
    np.testing.assert_array_equal(layer(x), first)
    assert not np.array_equal(layer(x), first)      # the layer's generator moves on


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
def test_stochastic_dtypes_and_unbatched(dtype, training):
    x = np.random.default_rng(6).random((3, 6, 6)).astype(dtype)
    before = x.copy()
    y, pullback = ndpool.vjp(ndpool.stochastic_pool2d, x, 2, training=training, rng=0)
    assert y.dtype == dtype and y.shape == (3, 3, 3)
    dx = pullback(np.ones(y.shape, dtype))
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_array_equal(x, before)
    if training:   # every drawn value is one of its window's cells
        assert np.isin(y, x).all()
        np.testing.assert_array_equal(dx.reshape(3, -1).sum(1), np.full(3, 9, dtype))


@pytest.mark.parametrize("rank, shape, kernel, stride", [
    (2, (2, 3, 7, 8), 2, None), (2, (1, 2, 9, 9), 3, 2), (3, (1, 2, 5, 6, 4), (2, 3, 2), 1)])
def test_stochastic_evaluation_mean_against_torch(rank, shape, kernel, stride):
    rng = np.random.default_rng(7)
    x = rng.random(shape) + 0.05
    x[0, 0, :3, :3] = 0                                 # windows of zeros give 0
    op = getattr(ndpool, f"stochastic_pool{rank}d")
    avg = getattr(TF, f"avg_pool{rank}d")
    y, pullback = ndpool.vjp(op, x, kernel, stride, training=False)
    dy = rng.standard_normal(y.shape)

    def closed_form(t):   # sum(x^2) / sum(x): a ratio of averages over the same windows
        total = avg(t, kernel, stride)
        return torch.where(total > 0, avg(t * t, kernel, stride) / total.clamp_min(1e-300),
                           torch.zeros_like(total))

    ty, tdx = torch_run(closed_form, x, dy)
    assert_close(y, ty, np.float64, exact=False)
    assert_close(pullback(dy), tdx, np.float64, exact=False, scale=4)
    assert y[(0, 0) + (0,) * rank] == 0             # its window holds only zeros


def test_stochastic_evaluation_finite_differences():
    rng = np.random.default_rng(8)
    x = rng.random((1, 2, 5, 6)) + 0.1
    dy = rng.standard_normal((1, 2, 2, 2))
    _, pullback = ndpool.vjp(ndpool.stochastic_pool2d, x, 3, 2, training=False)
    f = lambda a: float((ndpool.stochastic_pool2d(a, 3, 2, training=False) * dy).sum())
    np.testing.assert_allclose(pullback(dy), numeric_gradient(f, x), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("training", [True, False])
def test_stochastic_zero_windows_and_negative_input(training):
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 2:, 2:] = [[0, 3], [1, 0]]
    y, pullback = ndpool.vjp(ndpool.stochastic_pool2d, x, 2, training=training, rng=0)
    assert (y[0, 0].ravel()[:3] == 0).all() and y[0, 0, 1, 1] > 0
    dx = pullback(np.ones_like(y))
    assert (dx[0, 0, :2] == 0).all() and (dx[0, 0, :, :2] == 0).all()
    with pytest.raises(ValueError, match=r"stochastic_pool2d: x must be non-negative, "
                                         r"found -0\.5 \(.*ReLU"):
        ndpool.stochastic_pool2d(np.array([[[[1.0, -0.5], [0, 0]]]]), 2, training=training)


def test_stochastic_layer_modes():
    x = np.random.default_rng(9).random((1, 2, 4, 4))
    layer = ndpool.nn.StochasticPool2d(2, rng=0)
    assert layer.training and layer.eval() is layer and not layer.training
    np.testing.assert_array_equal(layer(x), ndpool.stochastic_pool2d(x, 2, training=False))
    assert layer.backward(np.ones((1, 2, 2, 2))).shape == x.shape
    assert layer.train().arguments["training"] is True
    assert ndpool.nn.StochasticPool3d(2).params == {}


# ---------------------------------------------------------------------- GeM
def torch_gem(eps, keepdims):
    def run(t, p):
        shape = (1, -1) + (1,) * (t.dim() - 2) if p.dim() == 1 else ()
        power = p.reshape(shape) if shape else p
        y = t.clamp(min=eps).pow(power).mean(dim=tuple(range(2, t.dim())), keepdim=True)
        y = y.pow(1.0 / power)
        return y if keepdims else y.flatten(1)
    return run


@pytest.mark.parametrize("shape, p, eps, keepdims", [
    ((2, 3, 5, 4), 3.0, 1e-6, False), ((2, 3, 7), 1.5, 1e-6, True),
    ((1, 4, 3, 3, 3), np.array([2.0]), 1e-3, False),
    ((2, 3, 4, 4), np.array([1.0, 3.0, 6.5]), 1e-6, True)])
def test_gem_against_torch_autograd(shape, p, eps, keepdims):
    rng = np.random.default_rng(10)
    x = rng.standard_normal(shape) * 0.5 + 0.8      # some cells below eps: clamped
    y, pullback = ndpool.vjp(ndpool.global_gem_pool, x, p=p, eps=eps, keepdims=keepdims,
                             wrt=("x", "p"))
    dy = rng.standard_normal(y.shape)
    dx, dp = pullback(dy)
    ty, tdx, tdp = torch_run(torch_gem(eps, keepdims), x, dy, np.asarray(p, np.float64))
    assert_close(y, ty, np.float64, exact=False)
    assert_close(dx, tdx, np.float64, exact=False, scale=4)
    assert_close(dp, tdp.reshape(np.shape(p)), np.float64, exact=False, scale=4)
    assert dp.shape == np.shape(p)


def test_gem_finite_differences_in_x_and_p():
    rng = np.random.default_rng(11)
    x = rng.random((2, 2, 3, 4)) + 0.2
    dy = rng.standard_normal((2, 2))
    p = np.array([2.0, 4.5])
    _, pullback = ndpool.vjp(ndpool.global_gem_pool, x, p=p, wrt=("x", "p"))
    dx, dp = pullback(dy)
    loss = lambda a, q: float((ndpool.global_gem_pool(a, p=q) * dy).sum())
    np.testing.assert_allclose(dx, numeric_gradient(lambda a: loss(a, p), x),
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(dp, numeric_gradient(lambda q: loss(x, q), p),
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_gem_low_precision_follows_float64(dtype):
    x = np.random.default_rng(12).random((2, 3, 6, 6)).astype(dtype)
    y = ndpool.global_gem_pool(x)
    assert y.dtype == dtype
    assert_close(y, ndpool.global_gem_pool(x.astype(np.float64)).astype(dtype), dtype,
                 exact=False, scale=2)


def test_gem_layer_learns_p():
    """params['p'] is a (1,) array, grads['p'] its gradient; descending it changes p the
    way finite differences say (towards the max when the loss rewards a larger output)."""
    x = np.random.default_rng(13).random((4, 3, 5, 5)) + 0.01
    layer = ndpool.nn.GlobalGeMPool(p=2.0)
    assert set(layer.params) == {"p"} and layer.params["p"].shape == (1,)
    y = layer(x)
    dx = layer.backward(-np.ones_like(y))            # loss = -sum(y)
    assert dx.shape == x.shape and layer.grads["p"].shape == (1,)
    loss = lambda q: -float(ndpool.global_gem_pool(x, p=q).sum())
    np.testing.assert_allclose(layer.grads["p"], numeric_gradient(loss, np.array([2.0])),
                               rtol=1e-6)
    assert layer.grads["p"][0] < 0                    # a larger p gives a larger y here
    layer.params["p"] -= 0.5 * layer.grads["p"]
    assert float(-layer(x).sum()) < loss(np.array([2.0]))
    assert "p=array([" in repr(layer)


# ---------------------------------------------------------------- blur pooling
TORCH_MODES = {"reflect": "reflect", "zeros": "constant", "replicate": "replicate",
               "circular": "circular"}


def torch_blur(rank, filter_size, stride, mode, channels):
    row = torch.tensor([math.comb(filter_size - 1, j) for j in range(filter_size)],
                       dtype=torch.float64)
    row = row / row.sum()
    weight = row
    for _ in range(rank - 1):
        weight = weight[..., None] * row
    weight = weight.expand((channels, 1) + (filter_size,) * rank)
    pads = [(filter_size - 1) // 2, filter_size // 2] * rank   # last dim first: all equal
    conv = getattr(TF, f"conv{rank}d")

    def run(t):
        padded = TF.pad(t, pads, mode=TORCH_MODES[mode])
        return conv(padded, weight.to(t.dtype), stride=stride, groups=channels)
    return run


CASES = [(rank, k, s, mode) for rank in (1, 2, 3) for k in range(1, 8) for s in (1, 2, 3)
         for mode in TORCH_MODES if rank < 3 or (k in (1, 2, 3, 4, 7) and s != 3)]


@pytest.mark.parametrize("rank, filter_size, stride, mode", CASES)
def test_blur_against_torch(rank, filter_size, stride, mode):
    rng = np.random.default_rng(rank * 100 + filter_size * 10 + stride)
    spatial = {1: (13,), 2: (9, 8), 3: (5, 7, 6)}[rank]
    x = rng.standard_normal((2, 3) + spatial)
    op = getattr(ndpool, f"blur_pool{rank}d")
    y, pullback = ndpool.vjp(op, x, filter_size, stride, mode)
    assert y.shape == (2, 3) + tuple(-(-n // stride) for n in spatial)
    dy = rng.standard_normal(y.shape)
    ty, tdx = torch_run(torch_blur(rank, filter_size, stride, mode, 3), x, dy)
    assert_close(y, ty, np.float64, exact=False)
    assert_close(pullback(dy), tdx, np.float64, exact=False, scale=4)


@pytest.mark.parametrize("filter_size", range(1, 8))
@pytest.mark.parametrize("mode", TORCH_MODES)
def test_blur_long_dims_against_torch(filter_size, mode):
    """Dims longer than MATRIX_SIZE take the strided-slice passes, not the matrix product;
    one dim each way here."""
    from ndpool.functional import _variants

    rng = np.random.default_rng(filter_size)
    x = rng.standard_normal((1, 2, _variants.MATRIX_SIZE + 7, 9))
    y, pullback = ndpool.vjp(ndpool.blur_pool2d, x, filter_size, (2, 3), mode)
    dy = rng.standard_normal(y.shape)
    ty, tdx = torch_run(torch_blur(2, filter_size, (2, 3), mode, 2), x, dy)
    assert_close(y, ty, np.float64, exact=False)
    assert_close(pullback(dy), tdx, np.float64, exact=False, scale=4)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_blur_matrix_and_slice_passes_agree(monkeypatch, rank):
    from ndpool.functional import _variants

    rng = np.random.default_rng(rank)
    x = rng.standard_normal((2, 3) + (7, 6, 5)[:rank])
    op = getattr(ndpool, f"blur_pool{rank}d")
    for filter_size, stride, mode in itertools.product((2, 3, 5), (1, 2), TORCH_MODES):
        y, pullback = ndpool.vjp(op, x, filter_size, stride, mode)
        dy = rng.standard_normal(y.shape)
        with monkeypatch.context() as patch:
            patch.setattr(_variants, "MATRIX_SIZE", 0)
            y2, pullback2 = ndpool.vjp(op, x, filter_size, stride, mode)
            np.testing.assert_allclose(y, y2, rtol=1e-13, atol=1e-14)
            np.testing.assert_allclose(pullback(dy), pullback2(dy), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_blur_low_precision_against_torch(dtype):
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 4, 11, 10)).astype(dtype)
    before = x.copy()
    y, pullback = ndpool.vjp(ndpool.blur_pool2d, x[:, :, ::-1], 5, 2)   # a negative-stride view
    dy = rng.standard_normal(y.shape).astype(dtype)
    work = np.ascontiguousarray(x[:, :, ::-1]).astype(np.float32)
    ty, tdx = torch_run(torch_blur(2, 5, 2, "reflect", 4), work, dy.astype(np.float32))
    assert y.dtype == dtype and pullback(dy).dtype == dtype
    assert_close(y, ty.astype(dtype), dtype, exact=False)
    assert_close(pullback(dy), tdx.astype(dtype), dtype, exact=False, scale=4)
    np.testing.assert_array_equal(x, before)


def test_blur_unbatched_and_constant_input():
    x = np.full((3, 10, 10), 2.5)
    for mode in ("reflect", "replicate", "circular"):   # they keep a constant constant
        np.testing.assert_allclose(ndpool.blur_pool2d(x, 4, padding_mode=mode), 2.5,
                                   rtol=1e-15)
    zeros = ndpool.blur_pool2d(x, 3, padding_mode="zeros")     # darker at the border
    assert zeros.shape == (3, 5, 5) and zeros[0, 0, 0] < 2.5 and zeros[0, 2, 2] == 2.5


def test_blur_finite_differences():
    rng = np.random.default_rng(15)
    x = rng.standard_normal((1, 2, 5, 6))
    dy = rng.standard_normal((1, 2, 3, 3))
    for mode in TORCH_MODES:
        _, pullback = ndpool.vjp(ndpool.blur_pool2d, x, 4, 2, mode)
        f = lambda a: float((ndpool.blur_pool2d(a, 4, 2, mode) * dy).sum())
        np.testing.assert_allclose(pullback(dy), numeric_gradient(f, x), rtol=1e-7,
                                   atol=1e-9, err_msg=mode)


@pytest.mark.parametrize("kernel_size, filter_size, stride, mode", [
    (2, 3, 2, "reflect"), (3, 4, 2, "zeros"), ((2, 3), 5, 3, "replicate"), (2, 1, 2, "circular")])
def test_max_blur_against_torch(kernel_size, filter_size, stride, mode):
    rng = np.random.default_rng(16)
    x = tie_free(rng, (2, 3, 10, 9))
    y, pullback = ndpool.vjp(ndpool.max_blur_pool2d, x, kernel_size, filter_size, stride,
                             mode)
    dy = rng.standard_normal(y.shape)
    blur = torch_blur(2, filter_size, stride, mode, 3)
    ty, tdx = torch_run(lambda t: blur(TF.max_pool2d(t, kernel_size, stride=1)), x, dy)
    assert_close(y, ty, np.float64, exact=False)
    assert_close(pullback(dy), tdx, np.float64, exact=False, scale=4)


def test_blur_and_max_blur_against_kornia():
    """kornia pads with zeros, (k - 1) // 2 before and k // 2 after: padding_mode='zeros'."""
    kornia = pytest.importorskip("kornia")
    rng = np.random.default_rng(17)
    x = rng.standard_normal((2, 3, 11, 10))
    for k, s in itertools.product(range(1, 8), (1, 2, 3)):
        ours = ndpool.blur_pool2d(x, k, s, padding_mode="zeros")
        theirs = kornia.filters.blur_pool2d(torch.tensor(x), k, s).numpy()
        assert_close(ours, theirs, np.float64, exact=False, what=f"blur {k} {s}")
        ours = ndpool.max_blur_pool2d(x, 2, k, s, padding_mode="zeros")
        theirs = kornia.filters.max_blur_pool2d(torch.tensor(x), k, stride=s,
                                                max_pool_size=2).numpy()
        assert_close(ours, theirs, np.float64, exact=False, what=f"max blur {k} {s}")


def test_blur_layers():
    x = np.random.default_rng(18).standard_normal((2, 3, 8, 8))
    layer = ndpool.nn.BlurPool2d(5, stride=2, padding_mode="replicate")
    y, pullback = ndpool.vjp(ndpool.blur_pool2d, x, 5, 2, "replicate")
    np.testing.assert_array_equal(layer(x), y)
    np.testing.assert_array_equal(layer.backward(np.ones_like(y)), pullback(np.ones_like(y)))
    assert ndpool.nn.MaxBlurPool2d()(x).shape == (2, 3, 4, 4)
    assert ndpool.nn.BlurPool1d()(x[:, :, 0]).shape == (2, 3, 4)
    assert ndpool.nn.BlurPool3d(2, 3, "replicate")(x[:, :, None]).shape == (2, 3, 1, 3, 3)


# ------------------------------------------------------------ spatial pyramid
@pytest.mark.parametrize("shape, levels, mode", [
    ((2, 3, 13, 17), (1, 2, 4), "max"), ((2, 3, 13, 17), (1, 2, 4), "avg"),
    ((1, 2, 5, 3), (6, 1), "max"), ((2, 2, 5, 6, 7), (1, 2), "max"),
    ((1, 3, 4, 5, 6), [3], "avg"), ((2, 4, 9, 9), 3, "avg")])
def test_spatial_pyramid_against_torch(shape, levels, mode):
    rng = np.random.default_rng(19)
    x = tie_free(rng, shape)
    rank = len(shape) - 2
    sizes = (levels,) if isinstance(levels, int) else tuple(levels)
    y, pullback = ndpool.vjp(ndpool.spatial_pyramid_pool, x, levels, mode)
    assert y.shape == (shape[0], shape[1] * sum(n ** rank for n in sizes))
    adaptive = getattr(TF, f"adaptive_{mode}_pool{rank}d")
    dy = rng.standard_normal(y.shape)
    ty, tdx = torch_run(lambda t: torch.cat([adaptive(t, n).flatten(1) for n in sizes], 1),
                        x, dy)
    assert_close(y, ty, np.float64, exact=mode == "max")
    assert_close(pullback(dy), tdx, np.float64, exact=False, scale=4)
    layer = ndpool.nn.SpatialPyramidPool(levels, mode)
    np.testing.assert_array_equal(layer(x), y)
    np.testing.assert_array_equal(layer.backward(dy), pullback(dy))


def test_spatial_pyramid_integer_max_and_any_size():
    image = np.random.default_rng(20).integers(0, 255, (1, 3, 31, 47), dtype=np.uint8)
    y = ndpool.spatial_pyramid_pool(image)
    assert y.dtype == np.uint8 and y.shape == (1, 63)
    assert (y[:, :3] == image.reshape(1, 3, -1).max(-1)).all()   # level 1: the global max
    assert ndpool.spatial_pyramid_pool(np.ones((2, 3, 8, 8)), (1, 2)).shape == (2, 15)
