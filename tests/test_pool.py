"""ndpool.pool: any axes of any rank, equal to the named ops and to a sliding-window oracle."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

import ndpool

da = pytest.importorskip("dask.array")

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def distinct(shape, seed=0):
    """Tie-free float64 values (one winner per window, for the gradient checks)."""
    rng = np.random.default_rng(seed)
    return rng.permutation(int(np.prod(shape))).reshape(shape) / 5.0 - 2


def oracle(x, op, kernel, stride, padding, dilation, axes):
    """Pad with the identity, take every window, reduce: the definition, without ceil_mode."""
    fill = {"max": -np.inf, "min": np.inf, "sum": 0.0}[op]
    pads = [(0, 0)] * x.ndim
    for a, p in zip(axes, padding):
        pads[a] = (p, p)
    padded = np.pad(x.astype(np.float64), pads, constant_values=fill)
    shape = [1] * x.ndim
    for a, k, d in zip(axes, kernel, dilation):
        shape[a] = d * (k - 1) + 1
    windows = sliding_window_view(padded, shape)
    step = [slice(None)] * x.ndim
    for a, s in zip(axes, stride):
        step[a] = slice(None, None, s)
    windows = windows[tuple(step)]
    taps = [slice(None)] * x.ndim
    for a, d in zip(axes, dilation):
        taps[a] = slice(None, None, d)
    windows = windows[(Ellipsis,) + tuple(taps)]
    reduce = {"max": np.max, "min": np.min, "sum": np.sum}[op]
    return reduce(windows, axis=tuple(range(x.ndim, 2 * x.ndim)))


@st.composite
def geometry(draw):
    ndim = draw(st.integers(1, 5))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim)))
    axes = tuple(sorted(draw(st.sets(st.integers(0, ndim - 1), min_size=1))))
    kernel = tuple(draw(st.integers(1, 3)) for _ in axes)
    stride = tuple(draw(st.integers(1, 3)) for _ in axes)
    dilation = tuple(draw(st.integers(1, 2)) for _ in axes)
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    signed = draw(st.booleans())
    return shape, dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                       axes=tuple(a - ndim for a in axes) if signed else axes)


@SETTINGS
@given(geometry(), st.sampled_from(["max", "min", "sum"]))
def test_pool_of_any_axes_matches_the_oracle(case, op):
    shape, kwargs = case
    x = distinct(shape)
    try:
        y = ndpool.pool(x, op, **kwargs)
    except ValueError:
        assume(False)
    axes = tuple(a % len(shape) for a in kwargs["axes"])
    want = oracle(x, op, kwargs["kernel_size"], kwargs["stride"], kwargs["padding"],
                  kwargs["dilation"], axes)
    assert y.shape == want.shape and y.dtype == x.dtype
    if op == "sum":
        np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    else:
        assert np.array_equal(y, want)


@SETTINGS
@given(geometry(), st.sampled_from(["max", "avg", "sum"]))
def test_pool_gradient_is_the_adjoint(case, op):
    """Sums and averages are linear, and a max of distinct values picks one cell per
    window, so <pool(x), dy> == <x, pullback(dy)> for each."""
    shape, kwargs = case
    if op != "max":
        kwargs.pop("dilation")
    x = distinct(shape)
    try:
        y, pullback = ndpool.vjp(ndpool.pool, x, op, **kwargs)
    except ValueError:
        assume(False)
    dy = distinct(y.shape, seed=1)
    dx = pullback(dy)
    assert dx.shape == x.shape
    np.testing.assert_allclose(np.vdot(y, dy), np.vdot(x, dx), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_pool_equals_the_named_ops(rank):
    x = np.random.default_rng(rank).integers(-5, 5, (2, 3) + (9,) * rank).astype(np.float32)
    axes = tuple(range(-rank, 0))
    for op, named, extra in [("max", "max_pool", dict(dilation=2)), ("min", "min_pool", {}),
                             ("avg", "avg_pool", dict(ceil_mode=True))]:
        fn = getattr(ndpool, f"{named}{rank}d")
        want, want_pb = ndpool.vjp(fn, x, 3, stride=2, padding=1, **extra)
        got, got_pb = ndpool.vjp(ndpool.pool, x, op, 3, 2, 1, axes=axes, **extra)
        assert np.array_equal(got, want)                      # bit for bit
        dy = np.random.default_rng(0).random(want.shape).astype(np.float32)
        assert np.array_equal(got_pb(dy), want_pb(dy))
    same = ndpool.pool(x, "max", 2, padding="same", axes=axes)
    assert np.array_equal(same, getattr(ndpool, f"max_pool{rank}d")(x, 2, padding="same"))


def test_depthwise_pooling_over_channels_and_integers():
    x = np.arange(2 * 6 * 4 * 4, dtype=np.uint8).reshape(2, 6, 4, 4)
    y = ndpool.pool(x, "max", 3, axes=1)          # TensorFlow's depthwise max_pool
    assert y.shape == (2, 2, 4, 4) and y.dtype == np.uint8
    assert np.array_equal(y, x.reshape(2, 2, 3, 4, 4).max(axis=2))


@SETTINGS
@given(geometry(), st.sampled_from(["max", "avg"]), st.data())
def test_pool_on_dask_equals_numpy(case, op, data):
    shape, kwargs = case
    if op == "avg":
        kwargs.pop("dilation")
    x = distinct(shape)
    try:
        y0, pb0 = ndpool.vjp(ndpool.pool, x, op, **kwargs)
    except ValueError:
        assume(False)
    chunks = tuple(data.draw(st.integers(1, n)) for n in shape)
    y, pb = ndpool.vjp(ndpool.pool, da.from_array(x, chunks=chunks), op, **kwargs)
    assert isinstance(y, da.Array)
    np.testing.assert_allclose(y.compute(scheduler="sync"), y0, rtol=1e-12)
    dy = distinct(y0.shape, seed=2)
    np.testing.assert_allclose(pb(dy).compute(scheduler="sync"), pb0(dy), rtol=1e-12)


def test_pool_errors_name_the_argument():
    x = np.zeros((4, 4))
    with pytest.raises(ValueError, match="pool: op='mean' is not one of 'max', 'min', 'avg', 'sum'"):
        ndpool.pool(x, "mean", 2)
    with pytest.raises(ValueError, match=r"pool: axes=\(0, -2\) names a dim twice"):
        ndpool.pool(x, "max", 2, axes=(0, -2))
    with pytest.raises(ValueError, match="outside an array of 2 dims"):
        ndpool.pool(x, "max", 2, axes=2)
    with pytest.raises(TypeError, match="must be None, an int or a non-empty tuple"):
        ndpool.pool(x, "max", 2, axes=())
    with pytest.raises(TypeError, match="pool: x has dtype int64"):
        ndpool.pool(x.astype(np.int64), "avg", 2)
    with pytest.raises(ValueError, match="kernel_size=.* must have 2 entries"):
        ndpool.pool(x, "max", (2, 2, 2))
