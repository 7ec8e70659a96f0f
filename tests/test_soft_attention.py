"""Softmax-weighted pooling (soft_pool*, attention_pool*, their layers) and CLIP's
AttentionPool2d: the compiled core against the NumPy reference on random geometries,
both against PyTorch closed forms (softmax over unfolded windows, CLIP's own
multi_head_attention_forward call) forward and backward, finite differences in float64,
and the errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ndpool
from oracle import available_backends

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL = {np.dtype(np.float16): 3e-3, np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-11}
SOFT = {1: ndpool.soft_pool1d, 2: ndpool.soft_pool2d, 3: ndpool.soft_pool3d}
ATTENTION = {1: ndpool.attention_pool1d, 2: ndpool.attention_pool2d, 3: ndpool.attention_pool3d}


def close(got, want, dtype, scale=1.0, what=""):
    rtol = RTOL[np.dtype(dtype)]
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               rtol=rtol, atol=rtol * scale, err_msg=what)


# --------------------------------------------------------------- the torch oracle
def torch_softmax_pool(x, logits, kernel, stride, padding, ceil_mode=False):
    """Closed form: pad x with 0 and the logits with -inf, unfold every spatial dim, and
    sum each window's softmax-weighted cells (the output size from torch's avg_pool)."""
    rank = len(kernel)
    avg = getattr(F, f"avg_pool{rank}d")
    out = avg(torch.zeros_like(x), kernel, stride, padding, ceil_mode).shape[2:]
    n = x.shape[2:]
    lo = padding
    hi = [max(0, (o - 1) * s + k - (i + p)) for o, s, k, i, p in zip(out, stride, kernel, n, lo)]
    pads = [v for dim in reversed(range(rank)) for v in (lo[dim], hi[dim])]
    xp = F.pad(x, pads, value=0.0)
    lp = F.pad(logits, pads, value=-math.inf)
    for dim in range(rank):
        xp = xp.unfold(2 + dim, kernel[dim], stride[dim])
        lp = lp.unfold(2 + dim, kernel[dim], stride[dim])
    cut = (slice(None), slice(None)) + tuple(slice(0, o) for o in out)
    xp, lp = xp[cut].flatten(2 + rank), lp[cut].flatten(2 + rank)
    return (torch.softmax(lp, dim=-1) * xp).sum(-1)


def torch_grads(x, logits, dy, kernel, stride, padding, ceil_mode=False, soft=False):
    tx = torch.tensor(x, requires_grad=True)
    tl = tx if soft else torch.tensor(logits, requires_grad=True)
    y = torch_softmax_pool(tx, tl, kernel, stride, padding, ceil_mode)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), tx.grad.numpy(), None if soft else tl.grad.numpy()


CASES = [  # rank, spatial size, kernel, stride, padding, ceil_mode
    (1, (9,), (3,), (2,), (1,), False),
    (1, (7,), (2,), (2,), (0,), True),
    (2, (8, 7), (2, 2), (2, 2), (0, 0), False),
    (2, (9, 10), (3, 2), (2, 1), (1, 1), True),
    (2, (6, 6), (3, 3), (1, 1), (1, 0), False),
    (3, (5, 6, 4), (2, 3, 2), (2, 2, 1), (1, 1, 0), True),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}d-{i}" for i, c in enumerate(CASES)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_soft_pool_matches_torch_closed_form(backend, case, dtype):
    rank, size, kernel, stride, padding, ceil_mode = case
    rng = np.random.default_rng(len(size) + sum(size))
    x = (rng.standard_normal((2, 3) + size) * 2).astype(dtype)
    with ndpool.use_backend(backend):
        y, pullback = SOFT[rank]._ndpool_impl(x, kernel, stride, padding, ceil_mode, grad=True)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = pullback(dy)
    want_y, want_dx, _ = torch_grads(x, None, dy, kernel, stride, padding, ceil_mode, soft=True)
    assert y.shape == want_y.shape and y.dtype == dtype and dx.dtype == dtype
    close(y, want_y, dtype, 2, "y")
    close(dx, want_dx, dtype, 4, "dx")


@pytest.mark.parametrize("case", [c for c in CASES if not c[5]],
                         ids=[f"{c[0]}d-{i}" for i, c in enumerate(CASES) if not c[5]])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_attention_pool_matches_torch_closed_form(backend, case, dtype):
    rank, size, kernel, stride, padding, _ = case
    rng = np.random.default_rng(7 + sum(size))
    x = rng.standard_normal((2, 3) + size).astype(dtype)
    logits = (rng.standard_normal(x.shape) * 3).astype(dtype)
    with ndpool.use_backend(backend):
        y, pullback = ATTENTION[rank]._ndpool_impl(x, logits, kernel, stride, padding, grad=True)
        dy = rng.standard_normal(y.shape).astype(dtype)
        grads = pullback(dy)
    want_y, want_dx, want_dl = torch_grads(x, logits, dy, kernel, stride, padding)
    assert set(grads) == {"x", "logits"} == set(ATTENTION[rank]._ndpool_wrt)
    close(y, want_y, dtype, 2, "y")
    close(grads["x"], want_dx, dtype, 4, "dx")
    close(grads["logits"], want_dl, dtype, 4, "dlogits")


def test_soft_pool_is_attention_pool_with_logits_x(backend):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 7, 6))
    with ndpool.use_backend(backend):
        y, soft_pb = ndpool.soft_pool2d._ndpool_impl(x, 3, 2, 1, grad=True)
        y2, attn_pb = ndpool.attention_pool2d._ndpool_impl(x, x, 3, 2, 1, grad=True)
        dy = rng.standard_normal(y.shape)
        grads = attn_pb(dy)
        close(y, y2, np.float64)
        close(soft_pb(dy), grads["x"] + grads["logits"], np.float64)   # both paths, one dx


def test_equal_logits_give_the_average_of_the_in_bounds_cells(backend):
    x = np.random.default_rng(4).standard_normal((1, 2, 7, 7))
    with ndpool.use_backend(backend):
        y = ndpool.attention_pool2d(x, np.zeros_like(x), 3, 2, 1)
    close(y, ndpool.avg_pool2d(x, 3, 2, 1, count_include_pad=False), np.float64)


def test_large_inputs_are_stable(backend):
    """exp(1000) overflows; shifted by the window's max nothing does."""
    x = np.array([[[1000.0, 999.0, -1000.0, 5.0]]])
    with ndpool.use_backend(backend):
        y = ndpool.soft_pool1d(x, 2)
    e = 1 / (1 + math.e)
    close(y, [[[1000 * (1 - e) + 999 * e, 5.0]]], np.float64)


def test_nan_in_a_window_gives_nan_there_only(backend):
    x = np.array([[[np.nan, 1.0, 2.0, 3.0]]])
    with ndpool.use_backend(backend):
        y = ndpool.soft_pool1d(x, 2)
        z = ndpool.attention_pool1d(np.array([[[1.0, 1.0, 2.0, 3.0]]]), x, 2)
    assert np.isnan(y[0, 0, 0]) and np.isfinite(y[0, 0, 1])
    assert np.isnan(z[0, 0, 0]) and np.isfinite(z[0, 0, 1])


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_channels_last_is_channels_first_moved(backend, rank):
    rng = np.random.default_rng(rank)
    x = rng.standard_normal((2, 5) + (6,) * rank)
    logits = rng.standard_normal(x.shape)
    last = lambda a: np.ascontiguousarray(np.moveaxis(a, 1, -1))
    with ndpool.use_backend(backend):
        y, pb = ATTENTION[rank]._ndpool_impl(x, logits, 3, 2, 1, grad=True)
        y_last, pb_last = ATTENTION[rank]._ndpool_impl(last(x), last(logits), 3, 2, 1,
                                                       layout="channels_last", grad=True)
        dy = rng.standard_normal(y.shape)
        g, g_last = pb(dy), pb_last(last(dy))
        s, s_last = (SOFT[rank](x, 2, 1, ceil_mode=True),
                     SOFT[rank](last(x), 2, 1, ceil_mode=True, layout="channels_last"))
    close(y_last, last(y), np.float64)
    close(g_last["x"], last(g["x"]), np.float64)
    close(g_last["logits"], last(g["logits"]), np.float64)
    close(s_last, last(s), np.float64)


def test_unbatched_input_and_views_and_input_untouched(backend):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 8, 8))
    logits = rng.standard_normal((3, 8, 8))
    before = x.copy(), logits.copy()
    view = np.asfortranarray(x)[..., ::-1][..., ::-1]
    view.setflags(write=False)
    with ndpool.use_backend(backend):
        y = ndpool.attention_pool2d(view, logits, 2)
        batched = ndpool.attention_pool2d(x[None], logits[None], 2)
    close(y, batched[0], np.float64)
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(logits, before[1])


def test_soft_pool_of_a_dask_array_is_lazy_and_the_same(backend):
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 17, 19))
    lazy = da.from_array(x, chunks=(1, 2, 5, 6))
    with ndpool.use_backend(backend):
        y, pb = ndpool.vjp(ndpool.soft_pool2d, x, 3, 2, 1, ceil_mode=True)
        y_lazy, pb_lazy = ndpool.vjp(ndpool.soft_pool2d, lazy, 3, 2, 1, ceil_mode=True)
        dy = rng.standard_normal(y.shape)
        assert isinstance(y_lazy, da.Array)
        # the core sums each window in one order whatever the block; NumPy's reductions
        # over the reference's gathered windows may round the last bit differently
        same = (np.testing.assert_array_equal if backend == "compiled"
                else lambda a, b: close(a, b, np.float64))
        same(y_lazy.compute(), y)
        same(pb_lazy(da.from_array(dy, chunks=3)).compute(), pb(dy))
        with pytest.raises(TypeError, match="attention_pool2d: attention pooling takes NumPy "
                                            "arrays, not Dask arrays"):
            ndpool.attention_pool2d(lazy, x, 2)


# ------------------------------------------------- compiled core against reference
pytestmark_compiled = pytest.mark.skipif("compiled" not in available_backends(),
                                         reason="the compiled core is not built")


@st.composite
def soft_geometry(draw):
    rank = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    stride = draw(st.one_of(st.none(), st.tuples(*[st.integers(1, 3)] * rank)))
    padding = draw(st.one_of(
        st.tuples(*[st.integers(0, k // 2) for k in kernel]),
        st.sampled_from(["valid", "same"])))
    ceil_mode = draw(st.booleans()) and not isinstance(padding, str)
    size = tuple(draw(st.integers(k, k + 7)) for k in kernel)
    return rank, kernel, stride, padding, ceil_mode, size


@pytestmark_compiled
@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(geometry=soft_geometry(), dtype=st.sampled_from([np.float16, np.float32, np.float64]),
       channels_last=st.booleans(), batched=st.booleans(), planes=st.integers(1, 5),
       soft=st.booleans(), seed=st.integers(0, 2**16))
def test_compiled_matches_reference(geometry, dtype, channels_last, batched, planes, soft,
                                    seed):
    rank, kernel, stride, padding, ceil_mode, size = geometry
    rng = np.random.default_rng(seed)
    lead = (2, planes) if batched else (planes,)
    x = rng.standard_normal(lead + size).astype(dtype)
    logits = (rng.standard_normal(x.shape) * 2).astype(dtype)
    layout = "channels_first"
    if channels_last:
        x, logits = np.moveaxis(x, -rank - 1, -1), np.moveaxis(logits, -rank - 1, -1)
        layout = "channels_last"
    results = {}
    for name in ("reference", "compiled"):
        with ndpool.use_backend(name):
            if soft:
                y, pb = SOFT[rank]._ndpool_impl(x, kernel, stride, padding, ceil_mode, layout,
                                                grad=True)
            else:
                y, pb = ATTENTION[rank]._ndpool_impl(x, logits, kernel, stride, padding, layout,
                                                     grad=True)
            dy = np.random.default_rng(seed + 1).standard_normal(y.shape).astype(dtype)
            g = pb(dy)
            results[name] = (y,) + ((g,) if soft else (g["x"], g["logits"]))
    for ref, got in zip(results["reference"], results["compiled"]):
        assert got.shape == ref.shape and got.dtype == ref.dtype == dtype
        close(got, ref, dtype, 8)


@pytestmark_compiled
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_compiled_threads_agree(threads):
    """Few planes: the work is split by rows (and blocks of windows), with the same sums."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 1, 40, 700)).astype(np.float32)
    logits = rng.standard_normal(x.shape).astype(np.float32)
    old = ndpool.get_num_threads()
    try:
        ndpool.set_num_threads(threads)
        y, pb = ndpool.attention_pool2d._ndpool_impl(x, logits, 3, 2, 1, grad=True)
        g = pb(np.ones_like(y))
    finally:
        ndpool.set_num_threads(old)
    with ndpool.use_backend("reference"):
        ry, rpb = ndpool.attention_pool2d._ndpool_impl(x, logits, 3, 2, 1, grad=True)
        rg = rpb(np.ones_like(ry))
    close(y, ry, np.float32, 4)
    close(g["x"], rg["x"], np.float32, 4)
    close(g["logits"], rg["logits"], np.float32, 4)


# ------------------------------------------------------------- finite differences
def numeric_gradient(f, a, eps=1e-6):
    grad = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + eps
        up = f()
        a[i] = old - eps
        down = f()
        a[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_gradients_match_finite_differences(backend, rank):
    rng = np.random.default_rng(20 + rank)
    x = rng.standard_normal((1, 2) + (5,) * rank)
    logits = rng.standard_normal(x.shape)
    args = (3, 2, 1)
    with ndpool.use_backend(backend):
        y, pb = ATTENTION[rank]._ndpool_impl(x, logits, *args, grad=True)
        dy = rng.standard_normal(y.shape)
        g = pb(dy)
        loss = lambda: float((ATTENTION[rank](x, logits, *args) * dy).sum())
        np.testing.assert_allclose(g["x"], numeric_gradient(loss, x), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(g["logits"], numeric_gradient(loss, logits),
                                   rtol=1e-6, atol=1e-8)
        ys, spb = SOFT[rank]._ndpool_impl(x, 2, 1, 1, True, grad=True)
        dys = rng.standard_normal(ys.shape)
        soft_loss = lambda: float((SOFT[rank](x, 2, 1, 1, True) * dys).sum())
        np.testing.assert_allclose(spb(dys), numeric_gradient(soft_loss, x), rtol=1e-6,
                                   atol=1e-8)


# ------------------------------------------------------------------------ layers
def test_soft_pool_layers():
    x = np.random.default_rng(6).standard_normal((2, 3, 6, 6, 6))
    layer = ndpool.nn.SoftPool3d(2, stride=2)
    y = layer(x)
    y_op, pb = ndpool.soft_pool3d._ndpool_impl(x, 2, 2, grad=True)
    np.testing.assert_array_equal(y, y_op)
    dy = np.ones_like(y)
    np.testing.assert_array_equal(layer.backward(dy), pb(dy))
    assert repr(ndpool.nn.SoftPool1d(3)).startswith("SoftPool1d(kernel_size=3")


def test_lip_layer_returns_both_gradients():
    rng = np.random.default_rng(8)
    x, logits = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((2, 3, 8, 8))
    layer = ndpool.nn.LIPPool2d(3, stride=2, padding=1)
    y = layer(x, logits)
    dy = rng.standard_normal(y.shape)
    dx, dlogits = layer.backward(dy)
    _, pb = ndpool.attention_pool2d._ndpool_impl(x, logits, 3, 2, 1, grad=True)
    np.testing.assert_array_equal(dx, pb(dy)["x"])
    np.testing.assert_array_equal(dlogits, pb(dy)["logits"])
    with pytest.raises(RuntimeError, match="LIPPool1d.backward: call forward first"):
        ndpool.nn.LIPPool1d(2).backward(np.ones((1, 1, 1)))


# ------------------------------------------------------------------------- errors
X = np.zeros((1, 2, 6, 6))
BAD = [
    (lambda: ndpool.attention_pool2d(X, np.zeros((1, 2, 6, 5)), 2), ValueError,
     r"attention_pool2d: logits has shape \(1, 2, 6, 5\) but x has shape \(1, 2, 6, 6\)"),
    (lambda: ndpool.attention_pool2d(X, np.zeros((1, 2, 6, 6), np.int32), 2), TypeError,
     r"attention_pool2d: logits has dtype int32; use a float dtype"),
    (lambda: ndpool.attention_pool2d(X, None, 2), TypeError, r"attention_pool2d: logits must be"),
    (lambda: ndpool.attention_pool1d(X[0], X[0], 0), ValueError,
     r"attention_pool1d: kernel_size=0 must be at least 1"),
    (lambda: ndpool.soft_pool2d(X, 0), ValueError, r"soft_pool2d: kernel_size=0 must be at least 1"),
    (lambda: ndpool.soft_pool2d(X, 2.5), TypeError, r"soft_pool2d: kernel_size=2\.5"),
    (lambda: ndpool.soft_pool2d(X, 7), ValueError, r"soft_pool2d: kernel_size=\(7, 7\) .*does not fit"),
    (lambda: ndpool.soft_pool2d(X, 4, padding=3), ValueError,
     r"soft_pool2d: padding=3 must be at most half of kernel_size=4"),
    (lambda: ndpool.soft_pool3d(X[0, 0], 2), ValueError, r"soft_pool3d: x must have 5 dims"),
    (lambda: ndpool.soft_pool2d(X.astype(np.int64), 2), TypeError, r"soft_pool2d: x has dtype int64"),
    (lambda: ndpool.soft_pool2d(X, 2, ceil_mode=1), TypeError, r"soft_pool2d: ceil_mode=1 must be True or False"),
    (lambda: ndpool.soft_pool2d(X, 2, layout="nhwc"), ValueError, r"soft_pool2d: layout='nhwc'"),
    (lambda: ndpool.vjp(ndpool.soft_pool2d, X, 2)[1](np.ones((1, 2, 2, 2))), ValueError,
     r"soft_pool2d pullback: dy has shape \(1, 2, 2, 2\) but the output has shape \(1, 2, 3, 3\)"),
]


@pytest.mark.parametrize("call, kind, message", BAD, ids=[b[2][:40] for b in BAD])
def test_errors_name_the_op_and_argument(call, kind, message):
    with pytest.raises(kind, match=message):
        call()


# ------------------------------------------------------------ CLIP's AttentionPool2d
def clip_torch(x, p, num_heads):
    """CLIP's AttentionPool2d.forward, as CLIP writes it, with the params as tensors."""
    x = x.flatten(start_dim=2).permute(2, 0, 1)
    x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)
    x = x + p["positional_embedding"][:, None, :].to(x.dtype)
    x, _ = F.multi_head_attention_forward(
        query=x[:1], key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=num_heads,
        q_proj_weight=p["q_proj.weight"], k_proj_weight=p["k_proj.weight"],
        v_proj_weight=p["v_proj.weight"], in_proj_weight=None,
        in_proj_bias=torch.cat([p["q_proj.bias"], p["k_proj.bias"], p["v_proj.bias"]]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0,
        out_proj_weight=p["c_proj.weight"], out_proj_bias=p["c_proj.bias"],
        use_separate_proj_weight=True, training=False, need_weights=False)
    return x.squeeze(0)


@pytest.mark.parametrize("spacial, embed, heads, out", [(4, 8, 2, 5), (3, 12, 3, None),
                                                       (2, 6, 1, 4)])
def test_clip_attention_pool_matches_torch(spacial, embed, heads, out):
    layer = ndpool.nn.AttentionPool2d(spacial, embed, heads, out, rng=spacial, dtype="float64")
    names = ["positional_embedding"] + [f"{p}.{w}" for p in ("q_proj", "k_proj", "v_proj", "c_proj")
                                        for w in ("weight", "bias")]
    assert sorted(layer.params) == sorted(names)
    assert layer.params["positional_embedding"].shape == (spacial ** 2 + 1, embed)
    assert layer.params["c_proj.weight"].shape == (out or embed, embed)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, embed, spacial, spacial))
    y = layer(x)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in layer.params.items()}
    tx = torch.tensor(x, requires_grad=True)
    ty = clip_torch(tx, tp, heads)
    ty.backward(torch.tensor(dy))
    assert y.shape == (3, out or embed) and dx.shape == x.shape
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert sorted(layer.grads) == sorted(names)
    for name in names:
        np.testing.assert_allclose(layer.grads[name], tp[name].grad.numpy(), rtol=1e-9,
                                   atol=1e-12, err_msg=name)


def test_clip_attention_pool_finite_differences_and_loaded_weights():
    layer = ndpool.nn.AttentionPool2d(2, 4, 2, 3, rng=1, dtype=np.float64)
    layer.params["q_proj.weight"] = np.random.default_rng(2).standard_normal((4, 4))  # loaded
    x = np.random.default_rng(3).standard_normal((2, 4, 2, 2))
    dy = np.random.default_rng(4).standard_normal((2, 3))
    layer(x)
    dx = layer.backward(dy)
    loss = lambda: float((layer(x) * dy).sum())
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-6, atol=1e-8)
    weight = layer.params["q_proj.weight"]
    layer(x)
    layer.backward(dy)
    np.testing.assert_allclose(layer.grads["q_proj.weight"], numeric_gradient(loss, weight),
                               rtol=1e-6, atol=1e-8)


def test_clip_attention_pool_errors():
    with pytest.raises(ValueError, match=r"AttentionPool2d: embed_dim=6 must be a multiple of num_heads=4"):
        ndpool.nn.AttentionPool2d(2, 6, 4)
    with pytest.raises(ValueError, match=r"AttentionPool2d: num_heads=0 must be a positive int"):
        ndpool.nn.AttentionPool2d(2, 6, 0)
    with pytest.raises(TypeError, match=r"AttentionPool2d: "):
        ndpool.nn.AttentionPool2d(2, 6)
    layer = ndpool.nn.AttentionPool2d(2, 4, 2)
    with pytest.raises(ValueError, match=r"AttentionPool2d: x must have shape \(N, 4, H, W\) "
                                         r"with H·W = spacial_dim² = 4, got shape \(1, 4, 3, 3\)"):
        layer(np.zeros((1, 4, 3, 3)))
    with pytest.raises(RuntimeError, match="call forward first"):
        layer.backward(np.zeros((1, 4)))
    layer.params["k_proj.bias"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"params\['k_proj.bias'\] has shape \(3,\), expected \(4,\)"):
        layer(np.zeros((1, 4, 2, 2)))
