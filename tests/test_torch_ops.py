"""ndpool.torch against torch.nn.functional and torch.nn: values, indices, gradients,
opcheck, gradcheck, torch.compile, memory formats, no_grad and devices."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as tF  # noqa: E402

import ndpool  # noqa: E402
import ndpool.torch as T  # noqa: E402
from ndpool.torch import nn as tnn  # noqa: E402


def distinct(*shape, dtype=torch.float64):
    """Tie-free input, so that the gradient of max/min has one answer."""
    n = 1
    for s in shape:
        n *= s
    return (torch.randperm(n, generator=torch.Generator().manual_seed(n)).to(dtype)
            / n).reshape(shape)


def same_as_torch(ours, theirs, x, **kwargs):
    """Forward (and indices) and the gradient of ``ours`` equal ``theirs``'."""
    a = x.detach().clone().requires_grad_()
    b = x.detach().clone().requires_grad_()
    ya, yb = ours(a, **kwargs), theirs(b, **kwargs)
    if isinstance(yb, tuple):
        assert torch.equal(ya[1], yb[1])
        ya, yb = ya[0], yb[0]
    torch.testing.assert_close(ya, yb, rtol=1e-12, atol=1e-12)
    dy = distinct(*yb.shape)
    ya.backward(dy)
    yb.backward(dy)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)
    return ya


def neg_min(rank):
    fn = getattr(tF, f"max_pool{rank}d")

    def min_pool(x, **kwargs):
        y = fn(-x, **kwargs)
        return (-y[0], y[1]) if isinstance(y, tuple) else -y

    return min_pool


SPATIAL = {1: (11,), 2: (9, 10), 3: (5, 6, 7)}
SLIDING = [dict(kernel_size=3, stride=2, padding=1),
           dict(kernel_size=2, stride=1, padding=0, ceil_mode=True),
           dict(kernel_size=3, stride=2, padding=1, dilation=2, return_indices=True)]


@pytest.mark.parametrize("rank", (1, 2, 3))
@pytest.mark.parametrize("kwargs", SLIDING)
def test_max_min_equal_torch(rank, kwargs):
    x = distinct(2, 3, *SPATIAL[rank])
    same_as_torch(getattr(T, f"max_pool{rank}d"), getattr(tF, f"max_pool{rank}d"), x, **kwargs)
    same_as_torch(getattr(T, f"min_pool{rank}d"), neg_min(rank), x, **kwargs)


@pytest.mark.parametrize("rank", (1, 2, 3))
@pytest.mark.parametrize("kwargs", [dict(kernel_size=3, stride=2, padding=1),
                                    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                         count_include_pad=False),
                                    dict(kernel_size=2)])
def test_avg_equal_torch(rank, kwargs):
    same_as_torch(getattr(T, f"avg_pool{rank}d"), getattr(tF, f"avg_pool{rank}d"),
                  distinct(2, 3, *SPATIAL[rank]), **kwargs)


@pytest.mark.parametrize("rank", (1, 2, 3))
def test_lp_adaptive_global_equal_torch(rank):
    x = distinct(2, 3, *SPATIAL[rank]) + 0.5
    same_as_torch(getattr(T, f"lp_pool{rank}d"), getattr(tF, f"lp_pool{rank}d"), x,
                  norm_type=2, kernel_size=2, stride=1)
    same_as_torch(getattr(T, f"adaptive_avg_pool{rank}d"),
                  getattr(tF, f"adaptive_avg_pool{rank}d"), x, output_size=3)
    same_as_torch(getattr(T, f"adaptive_max_pool{rank}d"),
                  getattr(tF, f"adaptive_max_pool{rank}d"), x, output_size=4,
                  return_indices=True)
    dims = tuple(range(2, 2 + rank))
    same_as_torch(T.global_max_pool, lambda a: a.amax(dims), x)
    same_as_torch(T.global_avg_pool, lambda a, keepdims: a.mean(dims, keepdim=keepdims), x,
                  keepdims=True)


@pytest.mark.parametrize("rank", (1, 2, 3))
def test_unpool_equal_torch(rank):
    x = distinct(2, 3, *SPATIAL[rank])
    y, i = getattr(tF, f"max_pool{rank}d")(x, 2, return_indices=True)
    ours, theirs = getattr(T, f"max_unpool{rank}d"), getattr(tF, f"max_unpool{rank}d")
    same_as_torch(lambda a, **k: ours(a, i, **k), lambda a, **k: theirs(a, i, **k), y,
                  kernel_size=2, output_size=x.shape)
    module = getattr(tnn, f"MaxUnpool{rank}d")(2)
    assert torch.equal(module(y, i, output_size=x.shape),
                       getattr(torch.nn, f"MaxUnpool{rank}d")(2)(y, i, output_size=x.shape))
    dy = torch.ones(y.shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: ours(a, i, 2, output_size=x.shape), (dy,))
    args = repr(dict(kernel_size=2, stride=None, padding=0, output_size=tuple(x.shape[2:]),
                     layout="channels_first"))
    torch.library.opcheck(getattr(torch.ops.ndpool, f"max_unpool{rank}d").default,
                          (y.clone().requires_grad_(), i, args))
    torch.library.opcheck(getattr(torch.ops.ndpool, f"max_unpool{rank}d_backward").default,
                          (distinct(*x.shape), y, i, args))


def test_unpool_channels_last():
    x = distinct(2, 3, 8, 8)
    y, i = tF.max_pool2d(x, 2, return_indices=True)
    form = torch.channels_last
    z = T.max_unpool2d(y.contiguous(memory_format=form), i.contiguous(memory_format=form), 2)
    assert z.is_contiguous(memory_format=form) and torch.equal(z, tF.max_unpool2d(y, i, 2))


@pytest.mark.parametrize("rank", (2, 3))
def test_fractional_equal_torch(rank):
    x = distinct(2, 3, *SPATIAL[rank])
    samples = torch.rand(2, 3, rank, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = tuple(s // 2 for s in SPATIAL[rank])
    ours, theirs = getattr(T, f"fractional_max_pool{rank}d"), getattr(tF, f"fractional_max_pool{rank}d")
    same_as_torch(lambda a, **k: ours(a, samples=samples, **k),
                  lambda a, **k: theirs(a, _random_samples=samples, **k), x,
                  kernel_size=2, output_size=out, return_indices=True)
    torch.manual_seed(3)
    drawn = ours(x, 2, output_ratio=(0.5,) * rank)
    torch.manual_seed(3)
    assert torch.equal(drawn, theirs(x, 2, output_ratio=(0.5,) * rank))
    module = getattr(tnn, f"FractionalMaxPool{rank}d")(2, output_size=out, samples=samples)
    assert torch.equal(module(x), theirs(x, 2, output_size=out, _random_samples=samples))
    assert torch.autograd.gradcheck(lambda a: ours(a, 2, output_size=out, samples=samples),
                                    (x.clone().requires_grad_(),))
    args = repr(dict(kernel_size=2, output_size=out, output_ratio=None,
                     layout="channels_first"))
    name = f"fractional_max_pool{rank}d"
    for op in (name, f"{name}_with_indices"):
        torch.library.opcheck(getattr(torch.ops.ndpool, op).default,
                              (x.clone().requires_grad_(), samples, args))
    y = ours(x, 2, output_size=out, samples=samples)
    torch.library.opcheck(getattr(torch.ops.ndpool, f"{name}_backward").default,
                          (distinct(*y.shape), x, samples, args))


def test_unbatched_and_float32():
    x = distinct(3, 8, 8, dtype=torch.float32)
    assert torch.equal(T.max_pool2d(x, 3, 2, 1), tF.max_pool2d(x, 3, 2, 1))
    assert T.avg_pool2d(x, 2).dtype == torch.float32


# one public call per registered op: (call, input shape)
CALLS = {f"{f}{r}d": kw for r in (1, 2, 3) for f, kw in (
    ("max_pool", dict(kernel_size=3, stride=2, padding=1)),
    ("min_pool", dict(kernel_size=2, dilation=2)),
    ("avg_pool", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("lp_pool", dict(norm_type=3, kernel_size=2)),
    ("adaptive_max_pool", dict(output_size=3)),
    ("adaptive_avg_pool", dict(output_size=3)),
    ("soft_pool", dict(kernel_size=2, stride=1)),
    ("median_pool", dict(kernel_size=3, stride=2, padding=1)))}
CALLS.update(global_max_pool={}, global_avg_pool=dict(keepdims=True))


def rank_of(name):
    return int(name[-2]) if name[-2].isdigit() else 2


def encoded(name, kwargs):
    import inspect
    params = [p for p in list(inspect.signature(getattr(T, name)).parameters)[1:]
              if p != "return_indices"]
    defaults = inspect.signature(getattr(T, name)).parameters
    return repr({p: kwargs.get(p, defaults[p].default) for p in params})


@pytest.mark.parametrize("name", sorted(CALLS))
def test_opcheck(name):
    x = distinct(2, 3, *SPATIAL[rank_of(name)]).requires_grad_()
    args = encoded(name, CALLS[name])
    torch.library.opcheck(getattr(torch.ops.ndpool, name).default, (x, args))
    if hasattr(torch.ops.ndpool, f"{name}_with_indices"):
        torch.library.opcheck(getattr(torch.ops.ndpool, f"{name}_with_indices").default,
                              (x, args))
    y = getattr(T, name)(x.detach(), **CALLS[name])
    torch.library.opcheck(getattr(torch.ops.ndpool, f"{name}_backward").default,
                          (distinct(*y.shape), x.detach(), args))


@pytest.mark.parametrize("shape", [(1, 1, 4, 4), (3, 9, 7), (2, 5, 6, 6)])
def test_opcheck_shapes_and_channels_last(shape):
    x = distinct(*shape)
    if x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    args = encoded("max_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True))
    torch.library.opcheck(torch.ops.ndpool.max_pool2d_with_indices.default,
                          (x.requires_grad_(), args))
    torch.library.opcheck(torch.ops.ndpool.global_avg_pool.default,
                          (x, encoded("global_avg_pool", dict(keepdims=True))))


@pytest.mark.parametrize("name", sorted(CALLS))
def test_gradcheck_float64(name):
    x = (distinct(1, 2, *SPATIAL[rank_of(name)]) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda a: getattr(T, name)(a, **CALLS[name]), (x,))


def test_compile_fullgraph_forward_and_backward():
    def net(a):
        y, i = T.max_pool2d(a, 3, stride=2, padding=1, return_indices=True)
        return T.avg_pool2d(y, 2).sum() + T.adaptive_avg_pool2d(a, 2).sum(), i

    compiled = torch.compile(net, fullgraph=True)
    x = distinct(2, 3, 9, 9)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    (sa, ia), (sb, ib) = compiled(a), net(b)
    torch.testing.assert_close(sa, sb)
    assert torch.equal(ia, ib)
    sa.backward()
    sb.backward()
    torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_no_grad_keeps_no_graph(mode):
    x = distinct(1, 2, 6, 6).requires_grad_()
    with mode():
        y = T.max_pool2d(x, 2)
    assert y.grad_fn is None and not y.requires_grad
    assert T.max_pool2d(x, 2).grad_fn is not None


@pytest.mark.parametrize("shape, form", [((2, 3, 8, 9), torch.channels_last),
                                         ((2, 3, 5, 6, 7), torch.channels_last_3d)])
def test_channels_last_in_channels_last_out(shape, form):
    rank = len(shape) - 2
    x = distinct(*shape).contiguous(memory_format=form)
    y = same_as_torch(getattr(T, f"max_pool{rank}d"), getattr(tF, f"max_pool{rank}d"), x,
                      kernel_size=3, stride=2, padding=1, return_indices=True)
    assert y.is_contiguous(memory_format=form) and not y.is_contiguous()
    a = x.clone().requires_grad_()
    T.avg_pool2d(a, 2).sum().backward() if rank == 2 else T.avg_pool3d(a, 2).sum().backward()
    assert a.grad.is_contiguous(memory_format=form)


def test_no_copy_of_the_input():
    x = distinct(1, 2, 8, 8)
    seen = []
    import ndpool.functional as F
    original = F.max_pool2d

    def spy(a, *args, **kwargs):
        seen.append(a.__array_interface__["data"][0])
        return original(a, *args, **kwargs)

    last = x.contiguous(memory_format=torch.channels_last)
    try:
        F.max_pool2d = spy
        T.max_pool2d(x, 2)
        T.max_pool2d(last, 2)
    finally:
        F.max_pool2d = original
    assert seen == [x.data_ptr(), last.data_ptr()]


def test_other_devices_and_types_get_clear_errors():
    with pytest.raises(ValueError, match="max_pool2d: x is on device 'meta'.*CPU"):
        T.max_pool2d(torch.empty(1, 1, 4, 4, device="meta"), 2)
    with pytest.raises(TypeError, match="bfloat16"):
        T.avg_pool2d(torch.zeros(1, 1, 4, 4, dtype=torch.bfloat16), 2)
    with pytest.raises(TypeError, match="torch.Tensor"):
        T.max_pool2d([[[1.0]]], 1)
    with pytest.raises(ValueError, match="max_unpool1d: indices is on device 'meta'"):
        T.max_unpool1d(torch.zeros(1, 1, 2), torch.empty(1, 1, 2, dtype=torch.int64,
                                                         device="meta"), 2)
    with pytest.raises(ValueError, match="padding"):
        T.max_pool2d(torch.zeros(1, 1, 4, 4), 2, padding=3)


MODULES = [("MaxPool1d", (3, 2, 1)), ("MaxPool2d", (3,), dict(stride=2, return_indices=True)),
           ("MaxPool3d", (2,), dict(ceil_mode=True)), ("AvgPool1d", (3, 2, 1)),
           ("AvgPool2d", (3, 2, 1), dict(count_include_pad=False, divisor_override=None)),
           ("AvgPool3d", (2,)), ("AdaptiveAvgPool1d", (3,)), ("AdaptiveAvgPool2d", ((2, 3),)),
           ("AdaptiveAvgPool3d", (2,)), ("AdaptiveMaxPool1d", (4,)),
           ("AdaptiveMaxPool2d", (3, True)), ("AdaptiveMaxPool3d", (2,)),
           ("LPPool1d", (2, 3)), ("LPPool2d", (2, 2), dict(stride=1)), ("LPPool3d", (3, 2))]


@pytest.mark.parametrize("case", MODULES, ids=[c[0] for c in MODULES])
def test_modules_drop_in_for_torch_nn(case):
    name, args, kwargs = case if len(case) == 3 else case + ({},)
    ours, theirs = getattr(tnn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    rank = int(name[-2])
    x = distinct(2, 3, *SPATIAL[rank]) + 0.5
    same_as_torch(ours, theirs, x)
    assert isinstance(ours, torch.nn.Module)
    for attribute in ("kernel_size", "stride", "output_size", "norm_type", "return_indices"):
        if hasattr(theirs, attribute):
            spread = lambda v: tuple(v) * (rank // len(v)) if isinstance(v, tuple) else (v,) * rank
            assert spread(getattr(ours, attribute)) == spread(getattr(theirs, attribute))
    assert dict(ours.state_dict()) == {} and repr(ours).startswith(name)


def test_import_ndpool_does_not_import_torch():
    import subprocess
    import sys
    code = "import sys, ndpool; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ndpool_own_modules():
    x = distinct(2, 3, 6, 6)
    torch.testing.assert_close(tnn.MinPool2d(2)(x), -tF.max_pool2d(-x, 2))
    torch.testing.assert_close(tnn.GlobalAvgPool()(x), x.mean((2, 3)))
    torch.testing.assert_close(tnn.GlobalMaxPool(keepdims=True)(x), x.amax((2, 3), keepdim=True))
    assert "kernel_size=2" in repr(tnn.MinPool2d(2))
    with pytest.raises(TypeError, match="MaxPool2d"):
        tnn.MaxPool2d(2, kernel=3)


@pytest.mark.parametrize("name,module,kwargs", [
    ("soft_pool2d", "SoftPool2d", dict(kernel_size=3, stride=2, padding=1)),
    ("median_pool2d", "MedianPool2d", dict(kernel_size=3, stride=2, padding=1)),
])
def test_variants_equal_the_numpy_ops(name, module, kwargs):
    x = distinct(2, 3, 7, 8).requires_grad_()
    y = getattr(T, name)(x, **kwargs)
    expected, pullback = ndpool.vjp(getattr(ndpool, name), x.detach().numpy(), **kwargs)
    np.testing.assert_array_equal(y.detach().numpy(), expected)
    dy = distinct(*y.shape)
    y.backward(dy)
    np.testing.assert_array_equal(x.grad.numpy(), pullback(dy.numpy()))
    layer = getattr(tnn, module)(**kwargs)
    np.testing.assert_array_equal(layer(x.detach()).numpy(), expected)
