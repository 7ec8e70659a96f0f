"""ndpool.coarsen: against the rule written out block by block, against dask / xarray /
scikit-image where they agree, and on the points where they differ."""
import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ndpool

da = pytest.importorskip("dask.array")
xr = pytest.importorskip("xarray")

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OPS = ["mean", "sum", "max", "min", "median", "mode"]


def rule_of_block(block: np.ndarray, op: str, skipna: bool, dtype: np.dtype):
    """The issue's rule for one block, in plain Python and NumPy."""
    cells = block.ravel()
    if cells.dtype.kind == "f":
        if np.isnan(cells).any() and not skipna:
            return np.nan
        cells = cells[~np.isnan(cells)]
        if cells.size == 0:
            return np.nan
        if op == "median":
            return np.median(cells)                     # the mean of the two middle values
    if op == "max":
        return cells.max()
    if op == "min":
        return cells.min()
    if op == "median":
        return np.sort(cells)[(cells.size - 1) // 2]    # integers: the lower middle value
    if op == "mode":
        values, counts = np.unique(cells, return_counts=True)
        return values[np.argmax(counts)]                # the first of the most frequent
    if cells.dtype.kind in "iu":
        total = sum(int(c) for c in cells)
        if op == "sum":
            return total
        return round(Fraction(total, cells.size)) if dtype.kind in "iu" else total / cells.size
    return cells.astype(np.float64).sum() if op == "sum" else cells.astype(np.float64).mean()


def rule(x, factors, op, boundary, skipna=False, dtype=None):
    if boundary == "trim":
        x = x[tuple(slice(0, n - n % f) for n, f in zip(x.shape, factors))]
    out_type = np.dtype(dtype) if dtype else (
        np.dtype(np.int64) if op == "sum" and x.dtype.kind in "iu" else x.dtype)
    shape = tuple(-(-n // f) for n, f in zip(x.shape, factors))
    out = np.empty(shape, dtype=object)
    for index in itertools.product(*map(range, shape)):
        block = x[tuple(slice(i * f, (i + 1) * f) for i, f in zip(index, factors))]
        out[index] = rule_of_block(block, op, skipna, out_type)
    return out.astype(out_type)


@st.composite
def cases(draw):
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 8), min_size=ndim, max_size=ndim)))
    factors = tuple(draw(st.integers(1, 4)) for _ in shape)
    dtype = np.dtype(draw(st.sampled_from([np.float16, np.float32, np.float64, np.uint8,
                                           np.int16, np.int64])))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.integers(-3, 4, shape).astype(dtype) if dtype.kind == "f" or dtype.kind == "i" \
        else rng.integers(0, 5, shape).astype(dtype)       # few values: ties and repeats
    if dtype.kind == "f":
        x = x + rng.random(shape).astype(dtype) * draw(st.sampled_from([0, 1]))
        x[rng.random(shape) < draw(st.sampled_from([0.0, 0.2, 0.9]))] = np.nan
    return x, factors


def check(got, want, op, dtype):
    assert got.dtype == want.dtype and got.shape == want.shape
    if op in ("mean", "sum") and want.dtype.kind == "f":
        tol = {2: 2e-3, 4: 1e-5, 8: 1e-12}[want.dtype.itemsize]
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol,
                                   atol=tol * 8)
    else:
        assert np.array_equal(got, want, equal_nan=want.dtype.kind == "f")


@SETTINGS
@given(cases(), st.sampled_from(OPS), st.sampled_from(["pad", "trim"]), st.booleans())
def test_coarsen_follows_the_rule(case, op, boundary, skipna):
    x, factors = case
    got = ndpool.coarsen(x, factors, op, boundary=boundary, skipna=skipna)
    check(got, rule(x, factors, op, boundary, skipna), op, x.dtype)


@settings(SETTINGS, max_examples=25)
@given(cases(), st.sampled_from(OPS), st.data())
def test_coarsen_of_dask_equals_numpy(case, op, data):
    x, factors = case
    chunks = tuple(data.draw(st.integers(1, n)) for n in x.shape)
    lazy = ndpool.coarsen(da.from_array(x, chunks=chunks), factors, op, boundary="pad")
    assert isinstance(lazy, da.Array)
    check(lazy.compute(scheduler="sync"), ndpool.coarsen(x, factors, op, boundary="pad"),
          op, x.dtype)


def test_integer_means_round_half_to_even_and_sums_are_int64():
    x = np.array([1, 2, 2, 3, -1, -2, -2, -3, 5, 6, 255, 255], dtype=np.int16)
    assert np.array_equal(ndpool.coarsen(x, 2), [2, 2, -2, -2, 6, 255])
    assert ndpool.coarsen(x, 2).dtype == np.int16
    assert np.array_equal(ndpool.coarsen(x, 2, dtype=np.float64),
                          [1.5, 2.5, -1.5, -2.5, 5.5, 255])
    u = np.full((4, 4), 255, np.uint8)
    s = ndpool.coarsen(u, 4, "sum")
    assert s.dtype == np.int64 and s[0, 0] == 255 * 16
    big = np.array([2**62, 2**62 - 1, 3, 4], dtype=np.int64)   # beyond float64's integers
    assert ndpool.coarsen(big, 2, "sum")[0] == 2**63 - 1
    assert ndpool.coarsen(big, 2)[0] == 2**62     # 2**62 - 1/2 rounds to the even 2**62


def test_median_and_mode_rules():
    f = np.array([1.0, 4.0, 2.0, 8.0], np.float32)
    assert ndpool.coarsen(f, 4, "median")[0] == 3.0               # NumPy's: (2 + 4) / 2
    assert ndpool.coarsen(f.astype(np.int32), 4, "median")[0] == 2  # the lower middle
    m = np.array([3, 1, 3, 1, 2, 7], np.uint8)
    assert ndpool.coarsen(m, 6, "mode")[0] == 1                   # 1 and 3 tie: the smaller
    assert ndpool.coarsen(np.array([5.0, np.nan, 5.0, 1.0]), 4, "mode")[0] != 5.0  # NaN wins
    assert ndpool.coarsen(np.array([5.0, np.nan, 5.0, 1.0]), 4, "mode", skipna=True)[0] == 5.0


def test_skipna_all_nan_blocks_stay_nan_for_every_op():
    x = np.array([np.nan, np.nan, 1.0, np.nan], np.float32)
    for op in OPS:
        y = ndpool.coarsen(x, 2, op, skipna=True)
        assert np.isnan(y[0]) and y[1] == 1.0, op
        assert np.isnan(ndpool.coarsen(x, 2, op)).all(), op


@pytest.mark.parametrize("op, reduction", [("mean", np.mean), ("sum", np.sum), ("max", np.max),
                                           ("min", np.min), ("median", np.median)])
def test_agrees_with_dask_and_skimage_on_whole_blocks(op, reduction):
    skimage_measure = pytest.importorskip("skimage.measure")
    x = np.random.default_rng(0).random((12, 9, 4))
    theirs = da.coarsen(reduction, da.from_array(x, chunks=(6, 3, 4)), {0: 3, 1: 3, 2: 2})
    ours = ndpool.coarsen(x, (3, 3, 2), op)
    np.testing.assert_allclose(ours, theirs.compute(), rtol=1e-12)
    np.testing.assert_allclose(ours, skimage_measure.block_reduce(x, (3, 3, 2), reduction),
                               rtol=1e-12)
    trimmed = da.coarsen(reduction, da.from_array(x[:11], chunks=4), {0: 3}, trim_excess=True)
    np.testing.assert_allclose(ndpool.coarsen(x[:11], {0: 3}, op, boundary="trim"),
                               trimmed.compute(), rtol=1e-12)


def test_where_the_others_differ_the_rule_holds():
    skimage_measure = pytest.importorskip("skimage.measure")
    x = np.array([1.0, 2.0, 3.0])
    # the partial block: skimage averages the zero padding, ndpool the in-bounds cells
    assert np.array_equal(skimage_measure.block_reduce(x, 2, np.mean), [1.5, 1.5])
    assert np.array_equal(ndpool.coarsen(x, 2, boundary="pad"), [1.5, 3.0])
    # integer means: dask gives float64, ndpool keeps the dtype, rounding half to even
    i = np.array([1, 2, 3, 4], np.uint8)
    assert da.coarsen(np.mean, da.from_array(i), {0: 2}).dtype == np.float64
    y = ndpool.coarsen(i, 2)
    assert y.dtype == np.uint8 and np.array_equal(y, [2, 4])
    with pytest.raises(ValueError, match="coarsen: axis 0 has size 3, which factor 2 does not divide"):
        ndpool.coarsen(x, 2)


def test_xarray_keeps_dims_attrs_and_averages_coordinates():
    rng = np.random.default_rng(1)
    data = rng.random((3, 10, 9))
    times = np.datetime64("2024-01-01") + np.arange(10).astype("timedelta64[h]")
    array = xr.DataArray(data, dims=("band", "time", "x"), name="radiance",
                         attrs={"units": "W"},
                         coords={"band": ["r", "g", "b"], "time": times,
                                 "x": np.arange(9) * 10.0, "lat": ("x", np.linspace(0, 8, 9))})
    ours = ndpool.coarsen(array, {"time": 2, "x": 3}, "mean")
    theirs = array.coarsen(time=2, x=3).mean()
    assert isinstance(ours, xr.DataArray) and ours.dims == array.dims
    assert ours.name == "radiance" and ours.attrs == {"units": "W"}
    np.testing.assert_allclose(ours.values, theirs.values, rtol=1e-12)
    for name in ("x", "lat"):
        np.testing.assert_allclose(ours[name].values, theirs[name].values)
    assert np.array_equal(ours["time"].values, theirs["time"].values)
    assert list(ours["band"].values) == ["r", "g", "b"]
    # xarray's boundary="pad" pads with NaN, which its skipna mean leaves out: the same
    # in-bounds average as ndpool's "pad"
    padded = array.coarsen(x=4, boundary="pad").mean()
    np.testing.assert_allclose(ndpool.coarsen(array, {"x": 4}, boundary="pad").values,
                               padded.values, rtol=1e-12)
    lazy = ndpool.coarsen(array.chunk({"time": 3}), {"time": 2}, "max")
    assert isinstance(lazy.data, da.Array)
    assert np.array_equal(lazy.values, array.coarsen(time=2).max().values)


def test_factor_forms_and_errors():
    x = np.arange(24.0).reshape(2, 3, 4)
    assert ndpool.coarsen(x, (1, 3, 2)).shape == (2, 1, 2)
    assert np.array_equal(ndpool.coarsen(x, {-1: 2, 1: 3}), ndpool.coarsen(x, (1, 3, 2)))
    assert ndpool.coarsen(x, 1, "sum").dtype == x.dtype
    assert ndpool.coarsen(x, 5, boundary="trim").shape == (0, 0, 0)
    with pytest.raises(ValueError, match="coarsen: axis 2 has size 4, which factor 3"):
        ndpool.coarsen(x, {2: 3})
    with pytest.raises(ValueError, match="op='avg' is not one of"):
        ndpool.coarsen(x, 2, "avg")
    with pytest.raises(ValueError, match="boundary='same' is not one of"):
        ndpool.coarsen(x, 2, boundary="same")
    with pytest.raises(ValueError, match="names axis 'y', which is not an axis"):
        ndpool.coarsen(x, {"y": 2})
    with pytest.raises(ValueError, match="must have 3 entries"):
        ndpool.coarsen(x, (2, 2))
    with pytest.raises(ValueError, match="must be at least 1"):
        ndpool.coarsen(x, 0)
    with pytest.raises(TypeError, match="x has dtype bool"):
        ndpool.coarsen(x > 2, 2)
    labelled = xr.DataArray(x[0], dims=("y", "x"), coords={"x": list("abcd")})
    with pytest.raises(TypeError, match="coordinate 'x' has dtype"):
        ndpool.coarsen(labelled, {"x": 2})
