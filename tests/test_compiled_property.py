"""Property tests: the compiled core gives what the NumPy reference backend gives.

Hypothesis draws geometry (rank, kernel, stride, padding ints, (before, after) pairs
and words, dilation, ceil_mode, divisor rules), dtype, layout, batching and the memory
layout of the input (strided, reversed, Fortran-ordered, read-only views). Max/min
values and indices must agree exactly (NaN inputs included, ties included: both
backends pick the first extreme, or the last NaN); averages, Lp and every backward
pass to float rounding. When a combination is invalid both backends must refuse it
with the same exception type.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import ndpool
from oracle import available_backends

pytestmark = pytest.mark.skipif("compiled" not in available_backends(),
                                reason="the compiled core is not built")

# NDPOOL_PROPERTY_SCALE=20 runs twenty times the examples, freshly random, to hunt bugs;
# the default is a fixed (derandomized) draw that keeps the file under a minute.
SCALE = int(os.environ.get("NDPOOL_PROPERTY_SCALE", "1"))
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=SCALE == 1)


def examples(n: int) -> int:
    return n * SCALE
FLOATS = (np.float16, np.float32, np.float64)
INTS = (np.int8, np.uint8, np.int32, np.int64)
RTOL = {np.dtype(np.float16): 2e-3, np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-5}
VIEWS = ("contiguous", "reversed", "strided", "fortran", "readonly", "channel_slice")


# ----------------------------------------------------------------------------- helpers
def run_both(call):
    """``call()`` under each backend: {name: ("ok", result) or ("raised", type)}."""
    outcome = {}
    for name in ("reference", "compiled"):
        with ndpool.use_backend(name):
            try:
                outcome[name] = ("ok", call())
            except (ValueError, TypeError) as error:
                outcome[name] = ("raised", type(error))
                if os.environ.get("NDPOOL_PROPERTY_WHY"):
                    print("RAISED", str(error).split(":")[1][:40])
    ref, got = outcome["reference"], outcome["compiled"]
    assert ref[0] == got[0], f"reference {ref[0]} {ref[1] if ref[0] == 'raised' else ''}, " \
                             f"compiled {got[0]} {got[1] if got[0] == 'raised' else ''}"
    try:
        event(f"both {ref[0]}")
    except Exception:   # not inside a hypothesis test
        pass
    if ref[0] == "raised":
        assert ref[1] is got[1]
        return None
    return ref[1], got[1]


def assert_same(ref, got, *, exact: bool, scale: float = 1.0, what="result"):
    """Same structure, shapes, dtypes; values exactly or to the dtype's rounding."""
    if isinstance(ref, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(ref) == len(got), what
        for i, (r, g) in enumerate(zip(ref, got)):
            assert_same(r, g, exact=exact, scale=scale, what=f"{what}[{i}]")
        return
    assert isinstance(got, np.ndarray), what
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    assert got.dtype == ref.dtype, f"{what}: dtype {got.dtype} != {ref.dtype}"
    if exact or ref.dtype.kind != "f":
        np.testing.assert_array_equal(got, ref, err_msg=what)
    else:
        rtol = RTOL[ref.dtype]
        np.testing.assert_allclose(got.astype(np.float64), ref.astype(np.float64), rtol=rtol,
                                   atol=rtol * scale, err_msg=what)


def make_view(x: np.ndarray, kind: str) -> np.ndarray:
    """A view holding ``x``'s values with the memory layout ``kind``."""
    if kind == "reversed":
        return np.ascontiguousarray(x[..., ::-1])[..., ::-1]
    if kind == "strided":
        base = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
        base[..., ::2] = x
        return base[..., ::2]
    if kind == "fortran":
        return np.asfortranarray(x)
    if kind == "readonly":
        view = x.copy()
        view.setflags(write=False)
        return view
    if kind == "channel_slice" and x.ndim >= 2:
        base = np.zeros((x.shape[0], 2 * x.shape[1]) + x.shape[2:], x.dtype)
        base[:, 1::2] = x
        return base[:, 1::2]
    return x.copy()


def values(rng, shape, dtype, *, ties: bool, nan: bool = False, positive=False):
    """Random input; small integers when ties are wanted; a few NaNs when ``nan``."""
    dtype = np.dtype(dtype)
    if ties:
        lo = 0 if dtype.kind == "u" or positive else -4
        x = rng.integers(lo, 5, size=shape).astype(dtype)
        if positive:
            x = (x + 1).astype(dtype)
    else:
        x = rng.standard_normal(shape)
        x = (np.abs(x) + 0.1 if positive else x).astype(dtype)
    if nan and dtype.kind == "f" and x.size:
        x[rng.random(shape) < 0.15] = np.nan
    return x


def upstream(rng, shape, dtype):
    dtype = np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.dtype(np.float64)
    return rng.standard_normal(shape).astype(dtype)


@st.composite
def geometry(draw, *, dilation: bool, words=True, pairs=True):
    """Rank, kernel, stride, padding, dilation, spatial size and ceil_mode. Padding is
    PyTorch's ints (at times one over half the kernel, which both must refuse), (before,
    after) pairs up to the window's extent (some whole windows in the padding, which
    both must refuse), or a word in either case."""
    rank = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    stride = draw(st.one_of(st.none(), st.tuples(*[st.integers(1, 3)] * rank)))
    dil = draw(st.tuples(*[st.integers(1, 2)] * rank)) if dilation else None
    extents = [d * (k - 1) + 1 for k, d in zip(kernel, dil or (1,) * rank)]
    pad_choices = [st.tuples(*[st.integers(0, k // 2 + (k == 4)) for k in kernel])]
    if pairs:
        pad_choices.append(st.tuples(*[st.tuples(st.integers(0, e), st.integers(0, e))
                                       for e in extents]))
    if words:
        pad_choices.append(st.sampled_from(["same", "valid", "SAME_LOWER", "same_lower",
                                            "VALID", "SAME_UPPER"]))
    padding = draw(st.one_of(*pad_choices))
    spatial = tuple(draw(st.integers(1, 10)) for _ in range(rank))
    assume(all(n >= min(k, 3) for n, k in zip(spatial, kernel)) or draw(st.booleans()))
    # ceil_mode with a padding word is refused: draw it rarely there
    ceil_mode = draw(st.booleans()) and (not isinstance(padding, str) or
                                         draw(st.integers(0, 4)) == 0)
    return rank, kernel, stride, padding, dil, spatial, ceil_mode


@st.composite
def array_shape(draw, rank, spatial):
    batched = draw(st.booleans())
    layout = draw(st.sampled_from(["channels_first", "channels_last"]))
    batch = draw(st.sampled_from([1, 1, 2, 3, 0])) if batched else None
    channels = draw(st.integers(1, 3))
    if layout == "channels_last":
        shape = ((batch,) if batched else ()) + spatial + (channels,)
    else:
        shape = ((batch,) if batched else ()) + (channels,) + spatial
    return shape, layout


# ----------------------------------------------------------------------- max and min
@settings(max_examples=examples(750), **SETTINGS)
@given(geom=geometry(dilation=True), data=st.data(),
       kind=st.sampled_from(["max", "min"]), dtype=st.sampled_from(FLOATS + INTS),
       ties_mode=st.sampled_from(["first", "split"]), view=st.sampled_from(VIEWS),
       nan=st.booleans(), seed=st.integers(0, 2**16))
def test_max_min_forward_indices_backward(geom, data, kind, dtype, ties_mode, view, nan, seed):
    rank, kernel, stride, padding, dilation, spatial, ceil_mode = geom
    shape, layout = data.draw(array_shape(rank, spatial))
    rng = np.random.default_rng(seed)
    x = values(rng, shape, dtype, ties=True, nan=nan)
    xv = make_view(x, view)
    before = xv.copy()
    op = getattr(ndpool, f"{kind}_pool{rank}d")
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode,
                  return_indices=True, ties=ties_mode, layout=layout,
                  storage_order=data.draw(st.sampled_from([0, 0, 1])))

    def call():
        (y, idx), pullback = ndpool.vjp(op, xv, kernel, **kwargs)
        dx = pullback(upstream(np.random.default_rng(seed), y.shape, dtype))
        return y, idx, dx

    pair = run_both(call)
    np.testing.assert_array_equal(xv, before)   # never modified
    if pair is None:
        return
    (y_ref, i_ref, dx_ref), (y, i, dx) = pair
    assert_same(y_ref, y, exact=True, what="values")
    assert_same(i_ref, i, exact=True, what="indices")
    assert i.dtype == np.int64
    assert_same(dx_ref, dx, exact=False, scale=4.0, what="dx")


@settings(max_examples=examples(180), **SETTINGS)
@given(geom=geometry(dilation=True), data=st.data(), kind=st.sampled_from(["max", "min"]),
       dtype=st.sampled_from(FLOATS + INTS), seed=st.integers(0, 2**16))
def test_max_min_without_indices_matches(geom, data, kind, dtype, seed):
    """The forward pass alone (no winners tracked) and first-tie backward from compact
    offsets agree with the reference too."""
    rank, kernel, stride, padding, dilation, spatial, ceil_mode = geom
    shape, layout = data.draw(array_shape(rank, spatial))
    rng = np.random.default_rng(seed)
    x = values(rng, shape, dtype, ties=True, nan=True)
    op = getattr(ndpool, f"{kind}_pool{rank}d")
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode,
                  layout=layout)

    def call():
        y, pullback = ndpool.vjp(op, x, kernel, **kwargs)
        return y, op(x, kernel, **kwargs), pullback(upstream(rng_copy(seed), y.shape, dtype))

    pair = run_both(call)
    if pair is not None:
        (y_ref, y2_ref, dx_ref), (y, y2, dx) = pair
        assert_same(y_ref, y, exact=True)
        assert_same(y2_ref, y2, exact=True)
        assert_same(dx_ref, dx, exact=False, scale=4.0, what="dx")


def rng_copy(seed):
    return np.random.default_rng(seed + 1)


# --------------------------------------------------------------------------- averages
@settings(max_examples=examples(600), **SETTINGS)
@given(geom=geometry(dilation=True), data=st.data(), dtype=st.sampled_from(FLOATS),
       count_include_pad=st.booleans(),
       divisor_override=st.one_of(st.none(), st.integers(-3, 5)),
       view=st.sampled_from(VIEWS), seed=st.integers(0, 2**16))
def test_avg_forward_backward(geom, data, dtype, count_include_pad, divisor_override, view,
                              seed):
    rank, kernel, stride, padding, dilation, spatial, ceil_mode = geom
    shape, layout = data.draw(array_shape(rank, spatial))
    rng = np.random.default_rng(seed)
    x = values(rng, shape, dtype, ties=False)
    xv = make_view(x, view)
    op = getattr(ndpool, f"avg_pool{rank}d")
    kwargs = dict(stride=stride, padding=padding, ceil_mode=ceil_mode,
                  count_include_pad=count_include_pad, divisor_override=divisor_override,
                  layout=layout, dilation=dilation)

    def call():
        y, pullback = ndpool.vjp(op, xv, kernel, **kwargs)
        return y, pullback(upstream(rng_copy(seed), y.shape, dtype))

    pair = run_both(call)
    if pair is not None:
        (y_ref, dx_ref), (y, dx) = pair
        assert_same(y_ref, y, exact=False, scale=4.0, what="avg")
        assert_same(dx_ref, dx, exact=False, scale=4.0, what="avg dx")


@settings(max_examples=examples(180), **SETTINGS)
@given(geom=geometry(dilation=True), data=st.data(), dtype=st.sampled_from(FLOATS),
       norm_type=st.sampled_from([1, 2, 3, 1.5]), seed=st.integers(0, 2**16))
def test_lp_forward_backward(geom, data, dtype, norm_type, seed):
    rank, kernel, stride, padding, dilation, spatial, ceil_mode = geom
    shape, layout = data.draw(array_shape(rank, spatial))
    rng = np.random.default_rng(seed)
    x = values(rng, shape, dtype, ties=False, positive=True)
    op = getattr(ndpool, f"lp_pool{rank}d")

    def call():
        y, pullback = ndpool.vjp(op, x, norm_type, kernel, stride=stride, ceil_mode=ceil_mode,
                                 padding=padding, dilation=dilation, layout=layout)
        return y, pullback(upstream(rng_copy(seed), y.shape, dtype))

    pair = run_both(call)
    if pair is not None:
        (y_ref, dx_ref), (y, dx) = pair
        assert_same(y_ref, y, exact=False, scale=8.0, what="lp")
        assert_same(dx_ref, dx, exact=False, scale=8.0, what="lp dx")


# --------------------------------------------------------------------------- adaptive
@settings(max_examples=examples(360), **SETTINGS)
@given(rank=st.integers(1, 3), data=st.data(), kind=st.sampled_from(["max", "avg"]),
       dtype=st.sampled_from(FLOATS + INTS), view=st.sampled_from(VIEWS),
       nan=st.booleans(), seed=st.integers(0, 2**16))
def test_adaptive(rank, data, kind, dtype, view, nan, seed):
    assume(kind == "max" or np.dtype(dtype).kind == "f")
    spatial = tuple(data.draw(st.integers(1, 9)) for _ in range(rank))
    out = tuple(data.draw(st.one_of(st.integers(1, 10), st.none())) for _ in range(rank))
    batched = data.draw(st.booleans())
    layout = data.draw(st.sampled_from(["channels_first", "channels_last"]))
    lead = ((data.draw(st.integers(0, 2)),) if batched else ())
    shape = lead + ((2,) + spatial if layout == "channels_first" else spatial + (2,))
    rng = np.random.default_rng(seed)
    x = make_view(values(rng, shape, dtype, ties=kind == "max", nan=nan), view)
    op = getattr(ndpool, f"adaptive_{kind}_pool{rank}d")
    extra = dict(return_indices=True, layout=layout) if kind == "max" else dict(layout=layout)

    def call():
        result, pullback = ndpool.vjp(op, x, out, **extra)
        y = result[0] if kind == "max" else result
        return result, pullback(upstream(rng_copy(seed), y.shape, dtype))

    pair = run_both(call)
    if pair is not None:
        (r_ref, dx_ref), (r, dx) = pair
        assert_same(r_ref, r, exact=kind == "max", scale=4.0, what=f"adaptive {kind}")
        assert_same(dx_ref, dx, exact=False, scale=4.0, what="adaptive dx")


# ------------------------------------------------------------------------- fractional
@settings(max_examples=examples(240), **SETTINGS)
@given(rank=st.integers(2, 3), data=st.data(), dtype=st.sampled_from(FLOATS),
       batched=st.booleans(), nan=st.booleans(), seed=st.integers(0, 2**16))
def test_fractional(rank, data, dtype, batched, nan, seed):
    spatial = tuple(data.draw(st.integers(2, 9)) for _ in range(rank))
    kernel = tuple(data.draw(st.integers(1, 3)) for _ in range(rank))
    # mostly outputs that fit (out + kernel - 1 <= in), sometimes ones that do not, and
    # sometimes empty ones
    out = tuple(data.draw(st.integers(data.draw(st.sampled_from([1] * 7 + [0])),
                                      max(1, n - k + 1 + data.draw(st.sampled_from(
                                          [0, 0, 0, 2]))))) for n, k in zip(spatial, kernel))
    batch = data.draw(st.integers(1, 2)) if batched else 1
    layout = data.draw(st.sampled_from(["channels_first", "channels_last"]))
    lead = (batch,) if batched else ()
    shape = lead + ((2,) + spatial if layout == "channels_first" else spatial + (2,))
    rng = np.random.default_rng(seed)
    x = values(rng, shape, dtype, ties=True, nan=nan)
    samples = rng.random((batch, 2, rank)) * 0.999
    op = getattr(ndpool, f"fractional_max_pool{rank}d")

    def call():
        (y, idx), pullback = ndpool.vjp(op, x, kernel, output_size=out, return_indices=True,
                                        samples=samples, layout=layout)
        return y, idx, pullback(upstream(rng_copy(seed), y.shape, dtype))

    pair = run_both(call)
    if pair is not None:
        (y_ref, i_ref, dx_ref), (y, i, dx) = pair
        assert_same(y_ref, y, exact=True, what="fractional values")
        assert_same(i_ref, i, exact=True, what="fractional indices")
        assert_same(dx_ref, dx, exact=False, scale=4.0, what="fractional dx")


# ----------------------------------------------------------------------------- unpool
@settings(max_examples=examples(240), **SETTINGS)
@given(geom=geometry(dilation=False, words=False, pairs=False),
       dtype=st.sampled_from(FLOATS + INTS), batched=st.booleans(), view=st.sampled_from(VIEWS),
       seed=st.integers(0, 2**16), grow=st.booleans(),
       layout=st.sampled_from(["channels_first", "channels_last"]))
def test_unpool(geom, dtype, batched, view, seed, grow, layout):
    rank, kernel, stride, padding, _, spatial, _ = geom
    rng = np.random.default_rng(seed)
    shape = ((2,) if batched else ()) + ((3,) + spatial if layout == "channels_first"
                                        else spatial + (3,))
    x = values(rng, shape, dtype, ties=True)
    with ndpool.use_backend("reference"):
        try:
            y, idx = getattr(ndpool, f"max_pool{rank}d")(x, kernel, stride, padding,
                                                       return_indices=True, layout=layout)
        except ValueError:
            assume(False)
    strides = kernel if stride is None else stride
    pooled = y.shape[-rank:] if layout == "channels_first" else y.shape[-rank - 1:-1]
    default = tuple((i - 1) * s - 2 * p + k
                    for i, s, p, k in zip(pooled, strides, padding, kernel))
    output_size = tuple(d + (grow and s > 1) for d, s in zip(default, strides))
    yv, idx_v = make_view(y, view), make_view(idx, view)
    op = getattr(ndpool, f"max_unpool{rank}d")

    def call():
        z, pullback = ndpool.vjp(op, yv, idx_v, kernel, stride, padding, output_size, layout)
        return z, pullback(upstream(rng_copy(seed), z.shape, dtype))

    pair = run_both(call)
    if pair is not None:
        (z_ref, dx_ref), (z, dx) = pair
        assert_same(z_ref, z, exact=True, what="unpool")
        assert_same(dx_ref, dx, exact=True, what="unpool dx")


# ----------------------------------------------------------------------------- global
@settings(max_examples=examples(240), **SETTINGS)
@given(kind=st.sampled_from(["max", "avg"]), dtype=st.sampled_from(FLOATS + INTS),
       spatial=st.lists(st.integers(1, 7), min_size=1, max_size=3),
       batch=st.integers(0, 3), channels=st.integers(1, 3), keepdims=st.booleans(),
       view=st.sampled_from(VIEWS), nan=st.booleans(), seed=st.integers(0, 2**16),
       layout=st.sampled_from(["channels_first", "channels_last"]))
def test_global(kind, dtype, spatial, batch, channels, keepdims, view, nan, seed, layout):
    rng = np.random.default_rng(seed)
    shape = ((batch, channels) + tuple(spatial) if layout == "channels_first"
             else (batch,) + tuple(spatial) + (channels,))
    x = make_view(values(rng, shape, dtype, ties=kind == "max", nan=nan), view)
    op = getattr(ndpool, f"global_{kind}_pool")

    def call():
        y, pullback = ndpool.vjp(op, x, keepdims=keepdims, layout=layout)
        return y, pullback(upstream(rng_copy(seed), y.shape, dtype))

    pair = run_both(call)
    if pair is not None:
        (y_ref, dx_ref), (y, dx) = pair
        assert_same(y_ref, y, exact=kind == "max", scale=4.0, what=f"global {kind}")
        assert_same(dx_ref, dx, exact=False, scale=4.0, what="global dx")


# ------------------------------------------------------------- larger, multi-threaded
@settings(max_examples=examples(40), **SETTINGS)
@given(kind=st.sampled_from(["max", "min", "avg"]), rank=st.integers(1, 3),
       planes=st.sampled_from([1, 2, 5]), layout=st.sampled_from(["channels_first",
                                                                   "channels_last"]),
       kernel=st.integers(1, 5), stride=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_larger_inputs_split_rows(kind, rank, planes, layout, kernel, stride, seed):
    """Inputs big enough that the core splits a plane's rows over threads."""
    side = {1: 5000, 2: 90, 3: 22}[rank]
    spatial = (side,) * rank
    shape = (1,) + spatial + (planes,) if layout == "channels_last" else (1, planes) + spatial
    x = values(np.random.default_rng(seed), shape, np.float32, ties=kind != "avg")
    op = getattr(ndpool, f"{kind}_pool{rank}d")
    kwargs = dict(stride=stride, padding=kernel // 2, ceil_mode=True, layout=layout)
    if kind != "avg":
        kwargs["return_indices"] = True
    pair = run_both(lambda: op(x, kernel, **kwargs))
    assert pair is not None
    assert_same(pair[0], pair[1], exact=kind != "avg", scale=4.0)


# ------------------------------------------------------- compact winner offsets, wider
@pytest.mark.parametrize("kernel, shape", [((7, 7, 7), (1, 2, 9, 8, 8)),       # uint16
                                           ((1, 260, 260), (2, 1, 262, 263))])  # int32
def test_backward_from_wide_compact_offsets(kernel, shape):
    """Windows of more than 256 (65536) cells keep winners as uint16 (int32) offsets."""
    rng = np.random.default_rng(7)
    x = values(rng, shape, np.float32, ties=True, nan=True)
    rank = len(kernel) if len(shape) == len(kernel) + 2 else len(shape) - 1
    kernel = kernel[-rank:]
    op = getattr(ndpool, f"max_pool{rank}d")

    def call():
        y, pullback = ndpool.vjp(op, x, kernel, stride=1, padding=(0,) * (rank - 1) + (1,))
        return y, pullback(upstream(rng_copy(3), y.shape, np.float32))

    ref, got = run_both(call)
    assert_same(ref, got, exact=False, scale=4.0)


# ------------------------------------------------- bugs found here, one case each
def test_regression_kernel_one_still_divides_by_divisor_override():
    """Found here: a window of one cell per output was copied, skipping the divisor."""
    x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    with ndpool.use_backend("compiled"):
        y = ndpool.avg_pool1d(x, 1, divisor_override=2)
    np.testing.assert_array_equal(y, [[0.5, 1.0, 1.5]])   # what torch gives


@pytest.mark.parametrize("kind, kernel, dtype, layout, indices", [
    ("max", (1, 4, 4), np.float64, "channels_first", True),
    ("max", (1, 5, 5), np.float32, "channels_first", False),
    ("max", (1, 9, 9), np.float32, "channels_last", False),
    ("avg", (1, 8, 8), np.float32, "channels_first", False),
])
def test_regression_running_passes_of_a_volume_with_a_depth_one_kernel(kind, kernel, dtype,
                                                                      layout, indices):
    """Found here: the running max / sum passes (stride 1, kernel height >= 4) read only
    the first D slice of a volume when the kernel's depth was 1, and left the others'
    outputs unwritten (the D axis counted as trivial)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 3, 12, 12)).astype(dtype)
    if layout == "channels_last":
        x = np.moveaxis(x, 1, -1)
    op = getattr(ndpool, f"{kind}_pool3d")
    extra = dict(return_indices=True) if indices else {}
    pair = run_both(lambda: op(x, kernel, 1, (0, kernel[1] // 2, kernel[2] // 2),
                               layout=layout, **extra))
    assert_same(*pair, exact=kind == "max")


def test_regression_reference_empty_channels_last():
    x = np.zeros((0, 4, 1), dtype=np.float32)
    with ndpool.use_backend("reference"):
        y = ndpool.max_pool1d(x, 2, layout="channels_last")
    assert y.shape == (0, 2, 1)


def test_regression_compiled_rejects_non_native_byte_order():
    x = np.arange(16.0).reshape(1, 1, 4, 4).astype(">f4")
    with ndpool.use_backend("reference"):
        expected = ndpool.max_pool2d(x, 2)
    with ndpool.use_backend("compiled"):
        got = ndpool.max_pool2d(x, 2)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_zero_channels_channels_last_forward(rank):
    """No channels at all: both backends return the empty result. Under UBSan this
    catches an integer division by zero (by the lane count) in the whole-plane fast path."""
    x = np.zeros((2,) + (4,) * rank + (0,), np.float32)
    calls = [lambda: getattr(ndpool, f"avg_pool{rank}d")(x, 4, layout="channels_last"),
             lambda: getattr(ndpool, f"max_pool{rank}d")(x, 4, layout="channels_last",
                                                         return_indices=True),
             lambda: getattr(ndpool, f"min_pool{rank}d")(x, 2, 1, 1, layout="channels_last")]
    for call in calls:
        pair = run_both(call)
        if pair is not None:
            assert_same(*pair, exact=True)


ZERO_CHANNEL_BACKWARD = """
import numpy as np, ndpool
x = np.zeros((2, 4, 0), np.float32)          # channels_last (N, W, C) with C = 0
y, pullback = ndpool.vjp(ndpool.max_pool1d, x, 4, layout="channels_last")
print(pullback(np.zeros(y.shape, np.float32)).shape)
"""


def test_regression_zero_channels_backward_crashes():
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", ZERO_CHANNEL_BACKWARD], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"exit status {done.returncode}"
    assert done.stdout.strip() == "(2, 4, 0)"
