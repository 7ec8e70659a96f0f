"""The one oracle of the test suite: run an ndpool op and its PyTorch counterpart on the
same input and compare shape, dtype, values, indices and the backward pass.

Max/min values and int64 indices must agree exactly; averages and Lp to float rounding.
Gradients are compared with the same random upstream gradient; callers pass tie-free
inputs (see ``tie_free``) whenever the op has a max or min, because with ties the
gradient depends on which tied element wins.
"""
from __future__ import annotations

import tracemalloc

import numpy as np

import ndpool

#: (rtol, atol) for values and gradients of magnitude about one
TOLERANCE = {
    np.dtype(np.float16): (4e-3, 4e-3),
    np.dtype(np.float32): (2e-5, 2e-6),
    np.dtype(np.float64): (1e-11, 1e-12),
}


def available_backends():
    """"reference" always; "compiled" when the compiled core provides the ops."""
    names = ["reference"]
    if ndpool.backends.default_backend() == "compiled":
        names.append("compiled")
    return names


def tolerance(dtype, scale=1.0):
    rtol, atol = TOLERANCE.get(np.dtype(dtype), TOLERANCE[np.dtype(np.float64)])
    return rtol * scale, atol * scale


def tie_free(rng, shape, dtype=np.float64, positive=False):
    """Distinct values (a scaled random permutation), exact in every float dtype we test.

    Signed: integers centred on zero times 1/8; positive: (1..n)/n, distinct for n < 2048.
    """
    n = int(np.prod(shape))
    perm = rng.permutation(n).astype(np.float64)
    values = (perm + 1) / max(n, 1) if positive else (perm - n // 2) / 8
    return values.reshape(shape).astype(dtype)


def rank_of(op):
    """1, 2 or 3 for a per-rank op (``max_pool2d``), None for the global pools."""
    name = op.__name__
    return int(name[-2]) if name.endswith("d") and name[-2].isdigit() else None


def _torch_dtype_input(x: np.ndarray):
    import torch
    # torch.from_numpy refuses negative strides and read-only memory: hand it a copy.
    return torch.from_numpy(np.array(x, copy=True, order="C"))


def _channel_axis(x_ndim, rank):
    return 1 if x_ndim == rank + 2 else 0


def run_torch(torch_op, x: np.ndarray, dy=None, *, channels_last=False, rank=None):
    """``torch_op`` on channels-first ``x`` (float copy for integer input; float32 where
    torch has no float16 kernel). Returns (y, indices or None, dx or None) as NumPy in
    ``x``'s layout."""
    import torch
    axis = _channel_axis(x.ndim, rank) if channels_last else None
    xt = np.moveaxis(x, -1, axis) if channels_last else x
    work = xt.astype(np.float64) if xt.dtype.kind in "iub" else xt

    def attempt(array, dy_array):
        t = _torch_dtype_input(array)
        t.requires_grad_(dy_array is not None)
        out = torch_op(t)
        y, idx = (out if isinstance(out, tuple) else (out, None))
        dx = None
        if dy_array is not None:
            y.backward(_torch_dtype_input(dy_array))
            dx = t.grad.numpy()
        return y.detach().numpy(), None if idx is None else idx.numpy(), dx

    dyt = None if dy is None else (np.moveaxis(dy, -1, axis) if channels_last else dy)
    try:
        y, idx, dx = attempt(work, dyt)
    except (RuntimeError, NotImplementedError) as error:
        if "Half" not in str(error):
            raise
        # no float16 kernel in torch: take the float32 result, rounded to float16
        y, idx, dx = attempt(work.astype(np.float32),
                             None if dyt is None else dyt.astype(np.float32))
        y, dx = y.astype(np.float16), None if dx is None else dx.astype(np.float16)
    if channels_last:
        back = lambda a: None if a is None else np.moveaxis(a, axis, -1)
        y, idx, dx = back(y), back(idx), back(dx)
    return y, idx, dx


def assert_close(actual, expected, dtype, *, exact, scale=1.0, what="values"):
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if exact:
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        rtol, atol = tolerance(dtype, scale)
        np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64),
                                   rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def check(op, torch_op, x, args=(), kwargs=None, *, backend="reference", exact=False,
          grad=True, scale=1.0, seed=0):
    """Compare ``op(x, *args, **kwargs)`` with ``torch_op(torch channels-first x)``.

    Checks output shape and dtype (= x's), values (exactly when ``exact``), int64
    indices when ``return_indices``, that the forward-only call equals the ``vjp``
    forward, and, when ``grad``, that ``vjp``'s pullback of a seeded random ``dy``
    equals torch autograd's input gradient. Also checks ``x`` is never modified.
    Returns ``(y, dx)``.
    """
    kwargs = dict(kwargs or {})
    rank = rank_of(op)
    channels_last = kwargs.get("layout") == "channels_last"
    before = x.copy()
    with ndpool.use_backend(backend):
        plain = op(x, *args, **kwargs)
        result, pullback = ndpool.vjp(op, x, *args, **kwargs)
    with_indices = bool(kwargs.get("return_indices"))
    y, idx = result if with_indices else (result, None)
    plain_y = plain[0] if with_indices else plain
    np.testing.assert_array_equal(plain_y, y, err_msg="op() and vjp() forward differ")

    dy = None
    if grad:
        rng = np.random.default_rng(seed)
        dy_dtype = x.dtype if x.dtype.kind == "f" else np.float64
        dy = rng.standard_normal(y.shape).astype(dy_dtype)
    ty, tidx, tdx = run_torch(torch_op, x, dy, channels_last=channels_last, rank=rank)

    assert y.dtype == x.dtype, f"output dtype {y.dtype} != input dtype {x.dtype}"
    expected_y = ty.astype(x.dtype) if x.dtype.kind in "iub" else ty
    assert_close(y, expected_y, x.dtype, exact=exact, scale=scale, what="forward values")
    if with_indices:
        assert idx.dtype == np.int64, f"indices dtype {idx.dtype}"
        np.testing.assert_array_equal(plain[1], idx)
        assert_close(idx, tidx, x.dtype, exact=True, what="indices")
    dx = None
    if grad:
        with ndpool.use_backend(backend):
            dx = pullback(dy)
        assert dx.shape == x.shape
        assert dx.dtype == dy.dtype, f"gradient dtype {dx.dtype} != {dy.dtype}"
        # the backward pass sums shares: exact for max/min (one winner), rounding else
        assert_close(dx, tdx, dy.dtype, exact=False, scale=4 * scale, what="input gradient")
    np.testing.assert_array_equal(x, before, err_msg="the input was modified")
    return y, dx


# ------------------------------------------------------------- random geometries
def random_sliding(rng, rank, *, dilation=True, padding=True, max_size=12,
                   fit_kernel=False):
    """Random per-dim kernel/stride/padding/dilation/ceil_mode and a spatial size the
    window fits in (without padding when ``fit_kernel``: torch's avg_pool3d needs it).
    Ints are sometimes given as one int for all dims."""
    kernel, stride, pad, dil, spatial = [], [], [], [], []
    kmax = 4 if rank < 3 else 3
    default_stride = bool(rng.random() < 0.15)   # stride=None means stride=kernel_size
    for _ in range(rank):
        k = int(rng.integers(1, kmax + 1))
        s = k if default_stride else int(rng.integers(1, 4))
        d = int(rng.integers(1, 3)) if dilation else 1
        p = int(rng.integers(0, k // 2 + 1)) if padding else 0
        extent = d * (k - 1) + 1
        low = max(1, extent - 2 * p, extent if fit_kernel else 1)
        size = int(rng.integers(low, max(low, max_size - 3 * (rank == 3)) + 1))
        while not every_window_touches(size, k, s, p, d):
            size += 1   # dilated windows that skip the whole input are refused (test_errors)
        kernel.append(k), stride.append(s), pad.append(p), dil.append(d)
        spatial.append(size)
    as_arg = lambda v: v[0] if len(set(v)) == 1 and rng.random() < 0.5 else tuple(v)
    geometry = dict(kernel_size=as_arg(kernel), stride=as_arg(stride),
                    padding=as_arg(pad), ceil_mode=bool(rng.random() < 0.5))
    if dilation:
        geometry["dilation"] = as_arg(dil)
    if default_stride:
        geometry["stride"] = None
    return tuple(spatial), geometry


def out_size(size, kernel, stride, pad, dilation, ceil_mode):
    """PyTorch's output size, written out independently of ndpool._window."""
    extent = dilation * (kernel - 1) + 1
    if ceil_mode:
        out = -(-(size + 2 * pad - extent) // stride) + 1
        if (out - 1) * stride >= size + pad:
            out -= 1
        return out
    return (size + 2 * pad - extent) // stride + 1


def every_window_touches(size, kernel, stride, pad, dilation):
    """True when every window (ceil_mode or not) has a tap inside the input."""
    for ceil_mode in (False, True):
        for o in range(out_size(size, kernel, stride, pad, dilation, ceil_mode)):
            start = o * stride - pad
            if not any(0 <= start + j * dilation < size for j in range(kernel)):
                return False
    return True


def random_shape(rng, rank, spatial, *, channels_last=False, batched=True):
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    if channels_last:
        return ((n,) if batched else ()) + tuple(spatial) + (c,)
    return ((n,) if batched else ()) + (c,) + tuple(spatial)


def traced_peak(call):
    """(result, peak bytes traced while ``call`` ran, beyond what was live before).
    tracemalloc sees NumPy's allocations, not torch's."""
    call()   # warm caches (the Window cache, lazily imported modules) outside the count
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak - before
