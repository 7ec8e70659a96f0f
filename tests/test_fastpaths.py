"""The compiled core's fast paths against the reference backend, each on the inputs that
select it: fused 2x2 stride-2 rows, running max/min and running sums for large stride-1
windows, channels-last rows, whole-plane reductions and disjoint-window backward.
Max/min must agree exactly (NaN included); averages to float32 rounding of the window
sum (the running sums are exact in double, the reference sums in float32).
"""
import numpy as np
import pytest

import ndpool
from oracle import available_backends

pytestmark = pytest.mark.skipif("compiled" not in available_backends(),
                                reason="the compiled core is not built")


def both(call):
    out = []
    for name in ("reference", "compiled"):
        with ndpool.use_backend(name):
            out.append(call())
    return out


def data(rng, shape, dtype, nan=False):
    x = (rng.standard_normal(shape) * 10).astype(dtype)
    if nan and x.dtype.kind == "f":
        x.flat[rng.integers(x.size, size=3)] = np.nan
    return x


def window(rng, h, w, least_h, least_w, most):
    """A kernel of at least (least_h, least_w) and at most ``most`` that fits (h, w), and
    a legal padding for it."""
    kh = int(rng.integers(least_h, min(h, most) + 1))
    kw = int(rng.integers(least_w, min(w, most) + 1))
    return (kh, kw), (int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1)))


@pytest.mark.parametrize("seed", range(40))
def test_running_max_min_large_stride1_windows(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(6, 40, 2)
    (kh, kw), pad = window(rng, h, w, 4, 1, 13)
    x = data(rng, (2, 3, h, w), [np.float32, np.float64, np.int16, np.float16][seed % 4],
             nan=seed % 3 == 0)
    for op in (ndpool.max_pool2d, ndpool.min_pool2d):
        ref, got = both(lambda: op(x, (kh, kw), 1, pad, ceil_mode=bool(seed % 2)))
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_running_max_min_nan_in_some_bands_only(dtype):
    """The running pass checks each band for NaN and runs its passes without the NaN test
    where there is none: one tall plane cut into bands, NaN (and -inf, +inf, -0.0) in a
    few bands only, planes with and without NaN side by side, channels-first and -last."""
    rng = np.random.default_rng(7)
    x = data(rng, (3, 1, 70, 2100), dtype)   # 2100-wide rows: bands of 31 to 52 rows
    x[0, 0, 3, 5] = np.nan            # a NaN in the first band of plane 0
    x[0, 0, 66, 2099] = np.nan        # and in its last band
    x[1, 0, 30:40, 0] = -np.inf       # plane 1: no NaN, infinities and signed zeros
    x[1, 0, 50, 7:20] = np.inf
    x[1, 0, 60:65, :] = -0.0
    x[2, 0, 69, 0] = np.nan           # plane 2: NaN in its last row only
    last = data(rng, (1, 40, 300, 17), dtype)   # one chunk of 16 lanes and a partial one
    last[0, 2, 3, 16] = np.nan
    last[0, 35, 299, 0] = np.nan
    for op in (ndpool.max_pool2d, ndpool.min_pool2d):
        for k, pad in ((5, 2), (13, 6)):
            ref, got = both(lambda: op(x, k, 1, pad))
            np.testing.assert_array_equal(got, ref)
            assert np.isnan(got[0, 0, :8]).any() and not np.isnan(got[1]).any()
            np.testing.assert_array_equal(np.signbit(got), np.signbit(ref))
            ref, got = both(lambda: op(last, k, 1, pad, layout="channels_last"))
            np.testing.assert_array_equal(got, ref)
            assert np.isnan(got[0, :8, :, 16]).any() and not np.isnan(got[0, 16:28]).any()


@pytest.mark.parametrize("seed", range(30))
def test_running_max_min_channels_last(seed):
    """Channels-last large windows (16 taps or more) run the separable passes on chunks
    of 128 bytes of lanes (16 to 128 lanes by dtype) with a partial last chunk."""
    rng = np.random.default_rng(seed)
    h, w = rng.integers(9, 30, 2)
    (kh, kw), pad = window(rng, h, w, 4, 4, 15)
    dtype = [np.float32, np.float64, np.float16, np.int8, np.int16][seed % 5]
    channels = [1, 5, 16, 20, 33, 70, 300][seed % 7]
    x = data(rng, (2, h, w, channels), dtype, nan=seed % 3 == 0)
    for op in (ndpool.max_pool2d, ndpool.min_pool2d):
        ref, got = both(lambda: op(x, (kh, kw), 1, pad, ceil_mode=bool(seed % 2),
                                   layout="channels_last"))
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [512, 528])
def test_running_max_min_channels_last_streamed_outputs(dtype, channels):
    """Channels-last outputs of 8 MiB or more are written around the caches, in whole
    lines (528 lanes: a partial last chunk, stored as usual); a NaN in one image makes its
    bands run again over what they streamed. Against the channels-first passes, which
    store as usual (and are checked against the reference above)."""
    rng = np.random.default_rng(channels)
    x = data(rng, (5, 40, 36, channels), dtype)
    x[3, 17, 20, 100] = np.nan
    x[4, 0, 0, 527 if channels == 528 else 511] = np.nan
    first = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    for op, k, pad in ((ndpool.max_pool2d, 5, 2), (ndpool.min_pool2d, 13, 6)):
        got = op(x, k, 1, pad, layout="channels_last")
        assert got.nbytes >= 8 << 20
        want = np.moveaxis(op(first, k, 1, pad), 1, -1)
        np.testing.assert_array_equal(got, want)
        assert np.isnan(got[3, 15:20, 18:23, 100]).all() and not np.isnan(got[:3]).any()


@pytest.mark.parametrize("case", ["max2", "avg2", "avg3", "max3d", "odd"])
def test_rows_streamed_outputs_equal_one_threads(case):
    """At 2 threads, outputs of 8 MiB or more whose rows are whole cache lines are written
    around the caches (a mean's quotients made before): the same bits as 1 thread, which
    stores as usual. 'odd': rows of 100 values (not whole lines), stored as usual."""
    rng = np.random.default_rng(3)
    shape = {"max3d": (1, 2, 128, 256, 256), "odd": (12, 16, 256, 200)}.get(case, (9, 16, 256, 256))
    x = data(rng, shape, np.float32)
    x.flat[rng.integers(x.size, size=5)] = np.nan
    call = {"max2": lambda: ndpool.max_pool2d(x, 2, 2),
            "avg2": lambda: ndpool.avg_pool2d(x, 2, 2),
            "avg3": lambda: ndpool.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
            "max3d": lambda: ndpool.max_pool3d(x, 2, 2),
            "odd": lambda: ndpool.max_pool2d(x, 2, 2)}[case]
    before = ndpool.get_num_threads()
    try:
        ndpool.set_num_threads(1)
        one = call()
        ndpool.set_num_threads(2)
        two = call()
    finally:
        ndpool.set_num_threads(before)
    assert two.nbytes >= 8 << 20
    np.testing.assert_array_equal(two, one)
    assert np.isnan(two).sum() == np.isnan(one).sum() > 0


def test_two_tap_backward_streamed_equals_one_threads():
    """At 2 threads, a k2 s2 max gradient of 64 MiB or more in rows of whole lines, over
    many planes, is written around the caches: the same bits as 1 thread, which stores
    as usual, the row no window reaches (H = 257) zero."""
    rng = np.random.default_rng(5)
    x = data(rng, (4, 64, 257, 256), np.float32)
    before = ndpool.get_num_threads()
    try:
        grads = []
        for threads in (1, 2):
            ndpool.set_num_threads(threads)
            y, pullback = ndpool.vjp(ndpool.max_pool2d, x, 2, 2)
            grads.append(pullback(np.ones_like(y) + y))
    finally:
        ndpool.set_num_threads(before)
    one, two = grads
    assert two.nbytes >= 64 << 20
    np.testing.assert_array_equal(two, one)
    assert not two[:, :, 256].any() and np.count_nonzero(two) == y.size


@pytest.mark.parametrize("seed", range(48))
def test_running_max_min_winners(seed):
    """The running extremes that also yield the winner (vjp and return_indices): PyTorch's
    first winner in scan order among ties, the last NaN, the first in-bounds cell of a
    window whose cells are all -inf, for compact and flat indices."""
    rng = np.random.default_rng(seed)
    h, w = rng.integers(6, 36, 2)
    (kh, kw), pad = window(rng, h, w, 4, 1, 17)
    dtype = [np.float32, np.float64, np.int16, np.float16][seed % 4]
    x = data(rng, (2, 3, h, w), dtype, nan=seed % 3 == 0)
    if seed % 4 != 2:
        x = np.round(x / 8).astype(dtype)          # few distinct values: many ties
        if seed % 5 == 0:
            x[0, 1] = -np.inf                      # every window of a plane all -inf
            x[1, 2, : h // 2] = -np.inf            # and windows that are partly so
    else:
        x = (x // 6).astype(dtype)
    ceil = bool(seed % 2)
    for op in (ndpool.max_pool2d, ndpool.min_pool2d):
        (y_ref, i_ref), (y_got, i_got) = both(
            lambda: op(x, (kh, kw), 1, pad, ceil_mode=ceil, return_indices=True))
        np.testing.assert_array_equal(y_got, y_ref)
        np.testing.assert_array_equal(i_got, i_ref)
        if dtype == np.int16:
            continue
        (y, pb_ref), (_, pb_got) = both(lambda: ndpool.vjp(op, x, (kh, kw), 1, pad,
                                                            ceil_mode=ceil))
        dy = rng.standard_normal(y.shape).astype(dtype)
        np.testing.assert_array_equal(pb_got(dy), pb_ref(dy))


@pytest.mark.parametrize("seed", range(40))
def test_running_sums_large_average_windows(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(8, 40, 2)
    (kh, kw), pad = window(rng, h, w, 8, 8, 16)
    dtype = np.float32 if seed % 2 else np.float16
    x = data(rng, (2, 3, h, w), dtype)
    kwargs = dict(ceil_mode=seed % 3 == 0, count_include_pad=seed % 4 < 2,
                  divisor_override=None if seed % 5 else 7)
    ref, got = both(lambda: ndpool.avg_pool2d(x, (kh, kw), 1, pad, **kwargs))
    assert got.dtype == ref.dtype == dtype
    scale = 10.0 * kh * kw / (7 if kwargs["divisor_override"] else 1)   # |window sum| bound
    atol = scale * (2e-6 if dtype == np.float32 else 2e-3)
    np.testing.assert_allclose(got.astype(np.float64), ref.astype(np.float64), rtol=1e-5,
                               atol=atol)


@pytest.mark.parametrize("width", list(range(1, 41)) + [63, 64, 65, 113, 224])
def test_stride_two_rows_of_every_width(width):
    """Stride-2 rows deinterleave each row once (simd::deinterleave, then its scalar tail):
    every width, odd kernels and even, dilated or padded, NaN in some rows, max, min and
    average, in the dtypes that take the vector way and one that does not."""
    rng = np.random.default_rng(width)
    for kw, dil in [(1, 1), (3, 1), (4, 1), (5, 1), (3, 2), (2, 3)]:
        span = (kw - 1) * dil + 1
        pad = min(kw // 2, span // 2) if dil == 1 else 0
        if span > width + 2 * pad:
            continue
        for dtype in (np.float32, np.float64, np.int16):
            x = data(rng, (2, 3, 7, width), dtype, nan=width % 3 == 0)
            args = dict(kernel_size=(3, kw), stride=(2, 2), padding=(1, pad), dilation=(1, dil))
            for op in (ndpool.max_pool2d, ndpool.min_pool2d):
                ref, got = both(lambda: op(x, **args))
                np.testing.assert_array_equal(got, ref, err_msg=f"{op.__name__} {kw=} {dil=} {dtype}")
            if dil == 1 and dtype == np.float32:
                args.pop("dilation")
                ref, got = both(lambda: ndpool.avg_pool2d(x, **args))
                np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 4, 8, 8), (2, 3, 9, 7), (1, 2, 5, 6, 7), (2, 2, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.uint8])
def test_two_by_two_stride_two_rows_forward_and_backward(shape, dtype):
    rng = np.random.default_rng(len(shape))
    x = data(rng, shape, dtype)
    rank = len(shape) - 2
    op = getattr(ndpool, f"max_pool{rank}d")
    ref, got = both(lambda: op(x, 2))
    np.testing.assert_array_equal(got, ref)
    if dtype == np.uint8:
        return
    (y, pb_ref), (_, pb_got) = both(lambda: ndpool.vjp(op, x, 2))
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_array_equal(pb_got(dy), pb_ref(dy))   # disjoint: written, not summed
    avg = getattr(ndpool, f"avg_pool{rank}d")
    if dtype == np.float32:
        ref, got = both(lambda: avg(x, 2))
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("width", range(2, 70))
def test_two_tap_backward_rows_of_every_width(width):
    """The disjoint backward's 2-tap rows go 16 windows at a time (AVX-512 builds) with a
    masked tail: every width up to and around multiples of 16 windows, NaN winners too."""
    rng = np.random.default_rng(width)
    dtype = np.float64 if width % 5 == 0 else np.float32
    x = data(rng, (2, 3, 4, width), dtype, nan=width % 3 == 0)
    for kernel in (2, (1, 2), (3, 2)):
        (y, pb_ref), (_, pb_got) = both(lambda: ndpool.vjp(ndpool.max_pool2d, x, kernel))
        dy = rng.standard_normal(y.shape).astype(dtype)
        np.testing.assert_array_equal(pb_got(dy), pb_ref(dy))


@pytest.mark.parametrize("shape", [(4, 5, 9, 11), (2, 9, 6, 7, 9), (3, 8, 15), (40, 1, 4, 33)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_two_tap_backward_of_many_planes_a_plane_at_a_time(shape, dtype):
    """With planes enough for the threads, the 2-tap backward takes whole planes per work
    unit from one list of each output row's input rows: odd sizes leave rows and columns
    that no window reaches (0 there), with NaN winners, at 1 and 2 threads."""
    rng = np.random.default_rng(sum(shape))
    x = data(rng, shape, dtype, nan=True)
    op = getattr(ndpool, f"max_pool{len(shape) - 2}d")
    before = ndpool.get_num_threads()
    try:
        for threads in (1, 2):
            ndpool.set_num_threads(threads)
            for kernel in (2, (3,) * (len(shape) - 3) + (2,)):
                (y, pb_ref), (_, pb_got) = both(lambda: ndpool.vjp(op, x, kernel))
                dy = rng.standard_normal(y.shape).astype(dtype)
                np.testing.assert_array_equal(pb_got(dy), pb_ref(dy))
    finally:
        ndpool.set_num_threads(before)


def test_two_tap_backward_rows_with_two_byte_offsets():
    """A window of more than 256 cells keeps 2-byte winner offsets."""
    rng = np.random.default_rng(7)
    x = data(rng, (2, 1, 10, 20, 36), np.float32)
    kernel = (10, 20, 2)   # 400 cells
    (y, pb_ref), (_, pb_got) = both(lambda: ndpool.vjp(ndpool.max_pool3d, x, kernel))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(pb_got(dy), pb_ref(dy))


@pytest.mark.parametrize("channels", [16, 20, 33, 48, 64])
@pytest.mark.parametrize("batch", [1, 3])
def test_channels_last_backward_of_overlapping_windows(channels, batch):
    """Channels-last max/min backward adds each lane's dy at its winner 16 lanes at a time
    (AVX-512 builds), with a scalar tail; one image splits its lanes over the threads."""
    rng = np.random.default_rng(channels * batch)
    x = np.round(data(rng, (batch, 9, 11, channels), np.float32, nan=channels == 33))
    threads = ndpool.get_num_threads()
    try:
        ndpool.set_num_threads(2)
        for op, k, s, pad in ((ndpool.max_pool2d, 3, 1, 1), (ndpool.min_pool2d, 5, 2, 2),
                              (ndpool.max_pool2d, (17, 17), 1, 8)):   # 289 taps: 2-byte offsets
            (y, pb_ref), (_, pb_got) = both(
                lambda: ndpool.vjp(op, x, k, s, pad, layout="channels_last"))
            dy = rng.standard_normal(y.shape).astype(np.float32)
            np.testing.assert_allclose(pb_got(dy), pb_ref(dy), rtol=1e-6, atol=1e-6)
    finally:
        ndpool.set_num_threads(threads)


@pytest.mark.parametrize("shape", [(7, 9, 24), (6, 8, 13), (5, 130, 260)])
def test_channels_last_backward_targets_of_dilated_and_wide_rows(shape):
    """At baseline the channels-last max backward splits 8-bit codes into target offsets
    in SSE2's 16-bit lanes, its steps scaled by the lanes: dilated taps, a lane count
    that leaves a scalar tail, and a row of 130 x 260 lanes whose scaled step passes 16
    bits (the table's way) all send dy where the reference does."""
    rng = np.random.default_rng(shape[-1])
    x = np.round(data(rng, (2,) + shape, np.float32))
    for op, k, s, pad, dil in ((ndpool.max_pool2d, 3, 1, 1, 2), (ndpool.min_pool2d, (2, 4), 1, (1, 2), 1),
                               (ndpool.max_pool2d, 5, 2, 2, 1)):
        (y, pb_ref), (_, pb_got) = both(
            lambda: ndpool.vjp(op, x, k, s, pad, dilation=dil, layout="channels_last"))
        dy = rng.standard_normal(y.shape).astype(np.float32)
        np.testing.assert_allclose(pb_got(dy), pb_ref(dy), rtol=1e-6, atol=1e-6, err_msg=f"{op.__name__} {k}")


@pytest.mark.parametrize("seed", range(12))
def test_channels_last_rows_match(seed):
    rng = np.random.default_rng(seed)
    k, s = [(2, 2), (3, 2), (3, 1), (5, 1)][seed % 4]
    x = data(rng, (2, 11, 10, 5 + seed), np.float32)
    pad = seed % 2 if k > 2 else 0
    for op in (ndpool.max_pool2d, ndpool.avg_pool2d):
        ref, got = both(lambda: op(x, k, s, pad, layout="channels_last"))
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last_view"])
def test_whole_plane_reductions(layout):
    rng = np.random.default_rng(3)
    x = data(rng, (4, 6, 7, 7), np.float32, nan=False)
    if layout == "channels_last_view":
        x = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1)
    for op in (ndpool.global_avg_pool, ndpool.global_max_pool):
        (y_ref, pb_ref), (y_got, pb_got) = both(lambda: ndpool.vjp(op, x))
        np.testing.assert_allclose(y_got, y_ref, rtol=1e-6, atol=1e-6)
        dy = rng.standard_normal(y_ref.shape).astype(np.float32)
        np.testing.assert_allclose(pb_got(dy), pb_ref(dy), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cells", [1, 2, 4, 5, 6, 9, 49])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last_view"])
def test_whole_plane_forward_of_every_length(cells, layout):
    """Global pools' forward (no pullback kept): channels-last planes go four cells per
    pass over the lanes, in scan order, so a NaN and the sums come out as the reference's."""
    rng = np.random.default_rng(cells)
    x = data(rng, (3, 20, 1, cells), np.float32, nan=cells % 2 == 1)
    if layout == "channels_last_view":
        x = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1)
    for op in (ndpool.global_avg_pool, ndpool.global_max_pool):
        ref, got = both(lambda: op(x, keepdims=True))
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
        assert got.shape == (3, 20, 1, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cells", [1, 7, 8, 9, 16, 17, 49, 63, 256, 257])
def test_small_planes_four_at_a_time_equal_one_at_a_time(cells, dtype):
    """Global pools of small planes reduce four planes at a time, their chains
    interleaved: each plane's sum or extreme is the one it gets alone, to the bit, for
    plane counts that leave a rest, at 1 and 2 threads, NaN in some planes."""
    rng = np.random.default_rng(cells)
    x = data(rng, (3, 7, 1, cells), dtype, nan=cells % 2 == 1)
    for op in (ndpool.global_avg_pool, ndpool.global_max_pool):
        alone = np.array([[op(x[n:n + 1, c:c + 1])[0, 0] for c in range(7)] for n in range(3)])
        before = ndpool.get_num_threads()
        try:
            for threads in (1, 2):
                ndpool.set_num_threads(threads)
                np.testing.assert_array_equal(op(x), alone, err_msg=f"{op.__name__} {threads}")
        finally:
            ndpool.set_num_threads(before)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int8, np.int32, np.uint16])
@pytest.mark.parametrize("cells", [2, 7, 8, 9, 16, 17, 49])
def test_global_extreme_at_every_cell(cells, dtype):
    """A global max / min of small planes combines its partials by a tree of vector
    selects and the tail in a vector lane: the extreme, or a NaN, placed at each cell in
    turn (plane c has it at cell c) is found, in planes taken four at a time and alone."""
    rng = np.random.default_rng(cells)
    info = np.finfo(dtype) if np.dtype(dtype).kind == "f" else np.iinfo(dtype)
    x = (rng.integers(-50, 50, (2, cells, 1, cells)) % 100 if info.min == 0
         else rng.integers(-50, 50, (2, cells, 1, cells))).astype(dtype)
    at = np.arange(cells)
    x[0, at, 0, at] = info.max
    x[1, at, 0, at] = info.min
    def global_min(v):  # a window over the whole plane: the same whole-plane reduction
        return ndpool.min_pool2d(v, kernel_size=(1, cells))[:, :, 0, 0]

    cases = [(x, ndpool.global_max_pool, np.max, 0), (x, global_min, np.min, 1)]
    if np.dtype(dtype).kind == "f":
        with_nan = x.copy()
        with_nan[:, at, 0, (at + 1) % cells] = np.nan
        cases += [(with_nan, ndpool.global_max_pool, np.max, None), (with_nan, global_min, np.min, None)]
    for v, op, expect, row in cases:
        want = expect(v, axis=(2, 3))
        np.testing.assert_array_equal(op(v), want, err_msg=op.__name__)
        if op is ndpool.global_max_pool:  # the core's whole-plane call, as min_pool2d's
            from ndpool.backends import compiled
            np.testing.assert_array_equal(compiled.global_reduce(v, "min", False), np.min(v, axis=(2, 3)))
        alone = np.array([[op(v[n:n + 1, c:c + 1])[0, 0] for c in range(cells)] for n in range(2)])
        np.testing.assert_array_equal(alone, want, err_msg=f"{op.__name__} alone")
        if row is not None:
            assert (want[row] == (info.max if row == 0 else info.min)).all()
        else:
            assert np.isnan(want).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64, np.int16])
def test_global_forward_in_one_core_call(dtype):
    """Global pools' forward goes to the core in one call for C-contiguous and
    channels-last memory, in place; other strides take the generic path. Both agree
    with the reference."""
    from ndpool.backends import compiled
    rng = np.random.default_rng(5)
    x = data(rng, (2, 5, 3, 4, 6), dtype, nan=True)
    views = {"contiguous": x,
             "channels_last": np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1),
             "strided": x[:, :, :, ::2]}
    for name, v in views.items():
        direct = compiled.global_reduce(v, "max", True)
        assert (direct is None) == (name == "strided")
        ops = [ndpool.global_max_pool] + ([ndpool.global_avg_pool] if dtype != np.int16 else [])
        for op in ops:
            for keepdims in (False, True):
                ref, got = both(lambda: op(v, keepdims=keepdims))
                assert got.shape == ref.shape and got.dtype == ref.dtype
                np.testing.assert_allclose(got.astype(np.float64), ref.astype(np.float64),
                                           rtol=2e-3 if dtype == np.float16 else 1e-6)


@pytest.mark.parametrize("seed", range(24))
def test_disjoint_average_backward(seed):
    """Averages whose windows never overlap (stride >= kernel) spread dy straight into
    the input rows they cover: padding, ceil_mode, count_include_pad, divisor_override,
    1-D to 3-D, both layouts, cells no window reaches (0), against the reference."""
    rng = np.random.default_rng(seed)
    rank = 1 + seed % 3
    layout = "channels_last" if seed % 2 else "channels_first"
    dtype = (np.float32, np.float64, np.float16)[seed % 3]
    spatial = tuple(int(rng.integers(3, 12)) for _ in range(rank))
    kernel = tuple(int(rng.integers(1, min(4, n) + 1)) for n in spatial)
    stride = tuple(k + int(rng.integers(0, 2)) for k in kernel)
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    channels = int(rng.integers(1, 6))
    shape = (2, *spatial, channels) if layout == "channels_last" else (2, channels, *spatial)
    x = data(rng, shape, dtype)
    kwargs = dict(stride=stride, padding=padding, ceil_mode=bool(seed % 4 == 1),
                  count_include_pad=bool(seed % 5), layout=layout)
    if seed % 7 == 3:
        kwargs["divisor_override"] = 3
    op = getattr(ndpool, f"avg_pool{rank}d")

    def run():
        y, pullback = ndpool.vjp(op, x, kernel, **kwargs)
        return pullback(data(np.random.default_rng(seed + 100), y.shape, dtype))

    ref, got = both(run)
    np.testing.assert_allclose(got.astype(np.float64), ref.astype(np.float64),
                               rtol=2e-3 if dtype == np.float16 else 1e-6, atol=1e-6)


def test_disjoint_average_backward_two_by_two_is_dy_over_four_repeated():
    """The 2x2 stride-2 mean's gradient, bit for bit: every input cell dy / 4."""
    rng = np.random.default_rng(5)
    x = data(rng, (3, 4, 10, 14), np.float32)
    y, pullback = ndpool.vjp(ndpool.avg_pool2d, x, 2)
    dy = data(rng, y.shape, np.float32)
    expected = np.repeat(np.repeat(dy / np.float32(4), 2, axis=2), 2, axis=3)
    np.testing.assert_array_equal(pullback(dy), expected)
    x_odd = data(rng, (1, 2, 5, 7), np.float32)  # the last row and column are under no window
    y, pullback = ndpool.vjp(ndpool.avg_pool2d, x_odd, 2)
    dx = pullback(np.ones(y.shape, np.float32))
    assert (dx[..., :4, :6] == 0.25).all() and (dx[..., 4, :] == 0).all() and (dx[..., :, 6] == 0).all()


@pytest.mark.parametrize("planes", [1, 3, 4, 5, 8, 9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_overlapping_max_backward_in_groups_of_planes(planes, dtype):
    """Small planes' max backward runs four planes at a time (and the rest one by one):
    every plane's sums equal the reference's (integer dy: exact in any order)."""
    rng = np.random.default_rng(planes)
    x = data(rng, (1, planes, 13, 11), dtype)
    for kernel, stride, padding in ((5, 1, 2), (3, 2, 1), (4, 3, 0)):
        def run():
            y, pullback = ndpool.vjp(ndpool.max_pool2d, x, kernel, stride, padding)
            return pullback(np.round(data(np.random.default_rng(7), y.shape, dtype)))
        ref, got = both(run)
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("case", [
    ("max_pool2d", (8, 9, 11), dict(kernel_size=(3, 5), stride=1, padding=(1, 2), dilation=(2, 1))),
    ("max_pool2d", (8, 12, 10), dict(kernel_size=(4, 2), stride=(1, 2), padding=(2, 1), dilation=(1, 3))),
    ("max_pool3d", (5, 7, 8, 9), dict(kernel_size=(3, 2, 3), stride=1, padding=1, dilation=(1, 2, 2))),
    ("max_pool3d", (4, 6, 9, 10), dict(kernel_size=(2, 3, 5), stride=(1, 2, 1), padding=(1, 1, 2))),
    ("max_pool2d", (6, 66, 65), dict(kernel_size=65, stride=1, padding=32)),  # 4225 taps: by the table
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_overlapping_max_backward_targets_from_codes(case, dtype, layout):
    """Each winner's cell comes from its compact code by arithmetic (the code split into
    kd, kh, kw by reciprocal multiplies, weighted by the dilated taps' distances; in
    channels-last, times the lanes): dilations, uneven kernels and 3-D codes give
    PyTorch's gradient to the bit (random dy: the sums must be in PyTorch's order too)."""
    torch = pytest.importorskip("torch")
    name, shape, kwargs = case
    rng = np.random.default_rng(len(shape) + shape[-1])
    x = rng.standard_normal((2,) + shape).astype(dtype)
    last = layout == "channels_last"
    ours = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if last else x
    with ndpool.use_backend("compiled"):
        y, pullback = ndpool.vjp(getattr(ndpool, name), ours, layout=layout, **kwargs)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = pullback(dy)
    if last:
        dx, dy = np.moveaxis(dx, -1, 1), np.ascontiguousarray(np.moveaxis(dy, -1, 1))
    t = torch.from_numpy(x).requires_grad_()
    getattr(torch.nn.functional, name)(t, **kwargs).backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(dx, t.grad.numpy())


@pytest.mark.parametrize("k", [5, 9, 13])
def test_running_max_min_keep_the_first_extreme_in_scan_order(k):
    """Ties between -0.0 and +0.0 show which cell a window kept: PyTorch keeps the first
    in scan order (row by row), and so must the running extremes. Reducing H before W
    would keep the first row of the first column that holds a zero instead. (The
    reference backend's NumPy reductions leave the sign of a tie unspecified.)"""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(k)
    x = rng.choice(np.array([-0.0, 0.0, -1.0], np.float32), size=(2, 3, 37, 45))
    for op, name, y in ((ndpool.max_pool2d, "max", x), (ndpool.min_pool2d, "min", -x)):
        t = torch.from_numpy(y)
        want = (torch.nn.functional.max_pool2d(t, k, 1, k // 2) if name == "max"
                else -torch.nn.functional.max_pool2d(-t, k, 1, k // 2)).numpy()
        with ndpool.use_backend("compiled"):
            got = op(y, k, 1, k // 2)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
        assert np.signbit(want).any() and not np.signbit(want).all()


@pytest.mark.parametrize("kernel", [(4, 1), (6, 9), (7, 17), (31, 31), (9, 63), (13, 40)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int8, np.float64])
def test_running_max_min_every_kind_of_pass(kernel, dtype):
    """The separable passes of channels-first planes per kernel size: up to 8 taps along W
    unrolled, wider ones by doubling spans then up to 8 taps s apart (s = 2, 4, 8), in
    segments of 512 cells; up to 6 rows along H in one flat pass, taller ones by van Herk
    blocks. Rows of 601 cells (no whole number of vectors, two segments), a NaN in one
    plane only (its band is done again with the NaN test)."""
    rng = np.random.default_rng(sum(kernel))
    x = data(rng, (2, 1, 40, 601), dtype)
    if x.dtype.kind == "f":
        x[1, 0, 30, 300] = np.nan
    pad = (kernel[0] // 2, kernel[1] // 2)
    for op in (ndpool.max_pool2d, ndpool.min_pool2d):
        ref, got = both(lambda: op(x, kernel, 1, pad))
        np.testing.assert_array_equal(got, ref)
        if x.dtype.kind == "f":
            assert np.isnan(got[1]).sum() == np.isnan(ref[1]).sum() > 0 and not np.isnan(got[0]).any()
