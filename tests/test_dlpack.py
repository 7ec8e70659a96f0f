"""Any ``__dlpack__`` array in, the same type out (arrays/dlpack.py): torch tensors and
JAX arrays through the NumPy API, their memory read without a copy, values equal to the
NumPy results, the pullback of ``vjp`` taking and giving the caller's type, and errors
for arrays in device memory."""
import types

import numpy as np
import pytest

import ndpool
from ndpool.arrays import dlpack
from oracle import traced_peak

torch = pytest.importorskip("torch")


def distinct(*shape, dtype=np.float32, seed=0):
    """Tie-free input (so that every gradient of max/min has one answer)."""
    n = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(n) / n).astype(dtype).reshape(shape)


def same(got, want):
    """``got`` (torch tensors) equals ``want`` (NumPy arrays): type, dtype, values."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            same(g, w)
        return
    assert type(got) is torch.Tensor, type(got)
    assert got.dtype == torch.from_numpy(np.empty(0, want.dtype)).dtype
    np.testing.assert_array_equal(got.numpy(), want)


X2 = distinct(2, 3, 9, 10)
X1, X3 = distinct(2, 3, 11), distinct(2, 3, 5, 6, 7)
SAMPLES = np.random.default_rng(1).random((2, 3, 2)).astype(np.float32)

# (name, call): every op family of the NumPy API, on the arrays given
CALLS = {
    "max_pool1d": lambda x: ndpool.max_pool1d(x, 3, 2, 1),
    "max_pool2d": lambda x: ndpool.max_pool2d(x, 3, 2, 1),
    "max_pool2d indices": lambda x: ndpool.max_pool2d(x, 3, 2, 1, return_indices=True),
    "max_pool3d dilated": lambda x: ndpool.max_pool3d(x, 2, 1, dilation=2),
    "min_pool2d indices": lambda x: ndpool.min_pool2d(x, 2, return_indices=True),
    "avg_pool2d": lambda x: ndpool.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
    "avg_pool1d same": lambda x: ndpool.avg_pool1d(x, 4, 2, "same"),
    "lp_pool2d": lambda x: ndpool.lp_pool2d(x, 2, 3, 2),
    "adaptive_max_pool2d": lambda x: ndpool.adaptive_max_pool2d(x, (4, 3), True),
    "adaptive_avg_pool3d": lambda x: ndpool.adaptive_avg_pool3d(x, 2),
    "fractional_max_pool2d": lambda x: ndpool.fractional_max_pool2d(
        x, 2, output_size=4, return_indices=True, samples=SAMPLES),
    "global_max_pool": lambda x: ndpool.global_max_pool(x),
    "global_avg_pool keepdims": lambda x: ndpool.global_avg_pool(x, keepdims=True),
    "pool": lambda x: ndpool.pool(x, "sum", 2, axes=(1, 3)),
    "coarsen": lambda x: ndpool.coarsen(x, {2: 3}, "max", boundary="trim"),
}
INPUT = {"max_pool1d": X1, "max_pool3d dilated": X3, "avg_pool1d same": X1,
         "adaptive_avg_pool3d": X3}


@pytest.mark.parametrize("name", list(CALLS))
def test_torch_in_torch_out_equal_to_numpy(name):
    x = INPUT.get(name, X2)
    tensor = torch.from_numpy(x.copy())
    same(CALLS[name](tensor), CALLS[name](x))
    np.testing.assert_array_equal(tensor.numpy(), x)   # the input is never modified


def test_unpool_takes_torch_values_and_indices():
    y, idx = ndpool.max_pool2d(X2, 2, return_indices=True)
    got = ndpool.max_unpool2d(torch.from_numpy(y), torch.from_numpy(idx), 2)
    same(got, ndpool.max_unpool2d(y, idx, 2))


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64, torch.uint8, torch.int32])
def test_dtypes_are_kept(dtype):
    x = torch.from_numpy(X2 * 100).to(dtype)
    y = ndpool.max_pool2d(x, 2)
    assert y.dtype == dtype
    same(y, ndpool.max_pool2d(x.numpy(), 2))


def test_the_numpy_view_is_the_tensors_memory():
    x = torch.from_numpy(X2.copy())
    for tensor in (x, x.to(memory_format=torch.channels_last), x[:, 1:, ::2],
                   x.requires_grad_()):
        view = dlpack.to_numpy("max_pool2d", "x", tensor)
        assert view.ctypes.data == tensor.data_ptr()
        assert view.strides == tuple(s * tensor.element_size() for s in tensor.stride())


BIG = torch.from_numpy(distinct(1, 8, 256, 256))   # 2 MiB


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("kind", ["max", "min", "avg", "adaptive"])
def test_the_input_is_not_copied(memory_format, kind):
    x = BIG.contiguous(memory_format=memory_format)
    calls = {"max": lambda a: ndpool.max_pool2d(a, 3, 2, 1),
             "min": lambda a: ndpool.min_pool2d(a, 2, return_indices=True),
             "avg": lambda a: ndpool.avg_pool2d(a, 2),
             "adaptive": lambda a: ndpool.adaptive_avg_pool2d(a, 7)}
    result, peak = traced_peak(lambda: calls[kind](x))
    parts = result if isinstance(result, tuple) else (result,)
    out = sum(r.numel() * r.element_size() for r in parts)
    assert peak <= out + 64 * 1024 < x.numel() * x.element_size(), (peak, out)
    same(result, calls[kind](BIG.numpy()))


tF = torch.nn.functional
LAST = {   # (ndpool's call, torch's call) on a channels-last tensor
    "max indices": (lambda x: ndpool.max_pool2d(x, 3, 2, 1, return_indices=True),
                    lambda x: tF.max_pool2d(x, 3, 2, 1, return_indices=True)),
    "avg": (lambda x: ndpool.avg_pool2d(x, 3, 2, 1), lambda x: tF.avg_pool2d(x, 3, 2, 1)),
    "adaptive max": (lambda x: ndpool.adaptive_max_pool2d(x, (4, 3), True),
                     lambda x: tF.adaptive_max_pool2d(x, (4, 3), True)),
    "lp": (lambda x: ndpool.lp_pool2d(x, 2, 3, 2), lambda x: tF.lp_pool2d(x, 2, 3, 2)),
}


@pytest.mark.parametrize("name", list(LAST))
def test_channels_last_tensors_give_channels_last_results(name):
    ours, theirs = LAST[name]
    x = torch.from_numpy(X2).to(memory_format=torch.channels_last)
    got, want = ours(x), theirs(x)
    for g, w in zip(got if isinstance(got, tuple) else (got,),
                    want if isinstance(want, tuple) else (want,)):
        assert g.is_contiguous(memory_format=torch.channels_last) and not g.is_contiguous()
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-6)


def test_channels_last_3d_and_tensorflow_padding_pairs():
    x = torch.from_numpy(X3).to(memory_format=torch.channels_last_3d)
    pads = ((0, 0), (0, 0), (1, 0), (0, 1), (1, 1))   # (N, C, D, H, W) rows
    got = ndpool.max_pool3d(x, 2, 2, pads, return_indices=True)
    same(got, ndpool.max_pool3d(X3, 2, 2, pads, return_indices=True))
    assert got[0].is_contiguous(memory_format=torch.channels_last_3d)


def test_channels_last_errors_are_the_callers_own():
    x = torch.from_numpy(X2).to(memory_format=torch.channels_last)
    with pytest.raises(ValueError) as numpy_error:
        ndpool.max_pool2d(X2, 2, padding=3)
    with pytest.raises(ValueError) as tensor_error:
        ndpool.max_pool2d(x, 2, padding=3)
    assert str(tensor_error.value) == str(numpy_error.value)
    with pytest.raises(TypeError) as numpy_error:
        ndpool.avg_pool2d(X2, 2, ceil_mode=1)
    with pytest.raises(TypeError) as tensor_error:
        ndpool.avg_pool2d(x, 2, ceil_mode=1)
    assert str(tensor_error.value) == str(numpy_error.value)


def test_requires_grad_is_read_detached():
    x = torch.from_numpy(X2.copy()).requires_grad_()
    y = ndpool.max_pool2d(x, 2)
    assert not y.requires_grad and y.grad_fn is None
    same(y, ndpool.max_pool2d(X2, 2))
    assert x.grad is None


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_vjp_with_torch_dy(memory_format):
    x = torch.from_numpy(X2).contiguous(memory_format=memory_format).requires_grad_()
    y, pullback = ndpool.vjp(ndpool.max_pool2d, x, 3, stride=2, padding=1)
    want_y, want_pullback = ndpool.vjp(ndpool.max_pool2d, X2, 3, stride=2, padding=1)
    same(y, want_y)
    dy = distinct(*y.shape, seed=2)
    dx = pullback(torch.from_numpy(dy))
    same(dx, want_pullback(dy))
    same(pullback(dy), want_pullback(dy))                 # a NumPy dy, the same dx
    expected = torch.autograd.grad(torch.nn.functional.max_pool2d(x, 3, 2, 1),
                                   x, torch.from_numpy(dy))[0]
    torch.testing.assert_close(dx, expected)
    with pytest.raises(ValueError, match=r"max_pool2d pullback: dy has shape \(1, 2\)"):
        pullback(torch.ones(1, 2))


@pytest.mark.parametrize("op, args", [
    (ndpool.avg_pool2d, (3, 2, 1)), (ndpool.lp_pool2d, (2, 2)),
    (ndpool.adaptive_max_pool2d, ((4, 3), True)), (ndpool.global_avg_pool, ()),
    (ndpool.pool, ("max", 2)), (ndpool.min_pool2d, (2, None, 0, 1, False, False, "split")),
])
def test_vjp_of_every_kind_matches_numpy(op, args):
    y, pullback = ndpool.vjp(op, torch.from_numpy(X2), *args)
    want_y, want_pullback = ndpool.vjp(op, X2, *args)
    same(y, want_y)
    dy = distinct(*(want_y[0] if isinstance(want_y, tuple) else want_y).shape, seed=3)
    same(pullback(torch.from_numpy(dy)), want_pullback(dy))


def test_layers_take_tensors():
    layer = ndpool.nn.MaxPool2d(3, stride=2, padding=1)
    y = layer(torch.from_numpy(X2))
    dx = layer.backward(torch.ones(y.shape))
    numpy_layer = ndpool.nn.MaxPool2d(3, stride=2, padding=1)
    same(y, numpy_layer(X2))
    same(dx, numpy_layer.backward(np.ones(y.shape, np.float32)))


# --------------------------------------------------------------- other libraries
class Bare:
    """An array of a library that has DLPack and nothing else (no array-API namespace)."""

    def __init__(self, data):
        self._data = data

    def __dlpack__(self, **kwargs):
        return self._data.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()


class HostArray(Bare):
    """Another library's CPU array (as CuPy's or any array-API library's would be): it
    has DLPack and an array-API namespace, and nothing else NumPy knows."""

    def __array_namespace__(self, api_version=None):
        return types.SimpleNamespace(from_dlpack=lambda a: HostArray(np.from_dlpack(a)))


class DeviceArray(HostArray):
    """An array in GPU memory, as DLPack describes it."""

    def __dlpack_device__(self):
        return (2, 0)   # kDLCUDA, device 0


def test_any_array_api_library_gets_its_own_type_back():
    y, idx = ndpool.max_pool2d(HostArray(X2), 2, return_indices=True)
    assert type(y) is HostArray and type(idx) is HostArray
    np.testing.assert_array_equal(y._data, ndpool.max_pool2d(X2, 2))
    assert idx._data.dtype == np.int64


@pytest.mark.parametrize("call", [
    lambda x: ndpool.max_pool2d(x, 2), lambda x: ndpool.global_avg_pool(x),
    lambda x: ndpool.vjp(ndpool.avg_pool2d, x, 2), lambda x: ndpool.coarsen(x, 2),
    lambda x: ndpool.pool(x, "max", 2)])
def test_arrays_on_a_gpu_get_an_error_naming_the_device(call):
    with pytest.raises(ValueError, match=r"^\w+: x is on device cuda:0, but ndpool computes "
                                         r"on the CPU \(copy it to host memory first"):
        call(DeviceArray(X2))


def test_a_gpu_dy_is_refused_by_the_pullback():
    _, pullback = ndpool.vjp(ndpool.max_pool2d, torch.from_numpy(X2), 2)
    with pytest.raises(ValueError, match="max_pool2d pullback: dy is on device cuda:0"):
        pullback(DeviceArray(np.ones((2, 3, 4, 5), np.float32)))


def test_an_array_of_a_library_without_from_dlpack():
    with pytest.raises(TypeError, match="max_pool2d: x is a .*Bare, whose library has no "
                                        "from_dlpack"):
        ndpool.max_pool2d(Bare(X2), 2)


def test_a_dtype_dlpack_cannot_carry_is_a_type_error():
    with pytest.raises(TypeError, match=r"avg_pool2d: x \(Tensor\) could not be read "
                                        r"through DLPack"):
        ndpool.avg_pool2d(torch.ones(1, 1, 4, 4, dtype=torch.bfloat16), 2)


def test_numpy_arrays_and_subclasses_stay_numpy():
    assert type(ndpool.max_pool2d(X2, 2)) is np.ndarray
    masked = np.ma.masked_array(X2)
    assert isinstance(ndpool.max_pool2d(masked, 2), np.ndarray)
    assert not dlpack.is_dlpack(X2) and dlpack.is_dlpack(torch.ones(1))


def test_jax_arrays_in_jax_arrays_out():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    x = jnp.asarray(X2)
    y, idx = ndpool.max_pool2d(x, 3, 2, 1, return_indices=True)
    assert isinstance(y, jax.Array) and isinstance(idx, jax.Array)
    # JAX holds no 64-bit types unless jax_enable_x64 is on: its from_dlpack gives int32
    assert idx.dtype == (jnp.int64 if jax.config.jax_enable_x64 else jnp.int32)
    assert not np.from_dlpack(x).flags.writeable   # a read-only export, read as it is
    want_y, want_idx = ndpool.max_pool2d(X2, 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(np.asarray(y), want_y)
    np.testing.assert_array_equal(np.asarray(idx), want_idx)
    y, pullback = ndpool.vjp(ndpool.avg_pool2d, x, 2)
    dx = pullback(jnp.ones(y.shape))
    assert isinstance(dx, jax.Array)
    np.testing.assert_allclose(np.asarray(dx), ndpool.vjp(ndpool.avg_pool2d, X2, 2)[1](
        np.ones(y.shape, np.float32)))


def test_a_traced_jax_value_gets_a_clear_error():
    jax = pytest.importorskip("jax")
    with pytest.raises(TypeError, match=r"max_pool2d: x is a traced JAX value \(\w+Tracer\)"
                                        r".*outside jax.jit"):
        jax.jit(lambda x: ndpool.max_pool2d(x, 2))(jax.numpy.ones((1, 1, 4, 4)))


def test_vjp_with_respect_to_more_inputs_gives_their_types_back():
    x = torch.from_numpy(np.random.default_rng(3).standard_normal((1, 2, 6, 6)))
    logits = torch.from_numpy(np.random.default_rng(4).standard_normal((1, 2, 6, 6)))
    y, pullback = ndpool.vjp(ndpool.attention_pool2d, x, logits, 2, wrt=("x", "logits"))
    dx, dlogits = pullback(torch.ones_like(y))
    assert all(isinstance(t, torch.Tensor) for t in (y, dx, dlogits))
    y_np, pullback_np = ndpool.vjp(ndpool.attention_pool2d, x.numpy(), logits.numpy(), 2,
                                   wrt=("x", "logits"))
    for got, expected in zip((dx, dlogits), pullback_np(np.ones_like(y_np))):
        np.testing.assert_array_equal(got.numpy(), expected)
