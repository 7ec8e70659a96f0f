"""Dask input: every op lazy, and equal to the in-memory op over random geometry and chunking.

Max/min and their indices must match bit for bit, averages to rounding; gradients are
checked on tie-free inputs (distinct values) against the in-memory pullback.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import ndpool  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
FEW = settings(SETTINGS, max_examples=10)   # for the tests that build several graphs


def distinct(shape, dtype=np.float32, seed=0):
    """Tie-free values in random order (so max/min gradients have one winner)."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))).reshape(shape) / 7.0 - 3).astype(dtype)


@st.composite
def chunking(draw, shape):
    """Random chunks of every dim: irregular, and as small as one cell."""
    chunks = []
    for size in shape:
        cuts = draw(st.sets(st.integers(1, max(size - 1, 1)), max_size=4)) if size > 1 else set()
        bounds = [0] + sorted(c for c in cuts if c < size) + [size]
        chunks.append(tuple(b - a for a, b in zip(bounds[:-1], bounds[1:])))
    return tuple(chunks)


@st.composite
def sliding(draw, rank=None):
    rank = rank or draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, 14), min_size=rank, max_size=rank)))
    kernel = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    stride = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    dilation = tuple(draw(st.lists(st.integers(1, 2), min_size=rank, max_size=rank)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    ceil_mode = draw(st.booleans())
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + spatial
    return shape, dict(kernel_size=kernel, stride=stride, padding=padding,
                       dilation=dilation, ceil_mode=ceil_mode), draw(chunking(shape))


def ops_of(family, rank):
    return getattr(ndpool, f"{family}{rank}d")


def both(op, x, chunks, *args, **kwargs):
    """(in-memory result, Dask result computed), or skip a geometry the op refuses."""
    try:
        want = op(x, *args, **kwargs)
    except ValueError:
        assume(False)
    got = op(da.from_array(x, chunks=chunks), *args, **kwargs)
    for part in (got if isinstance(got, tuple) else (got,)):
        assert isinstance(part, da.Array)
    return want, dask.compute(got, scheduler="sync")[0]


@SETTINGS
@given(sliding(), st.sampled_from(["max", "min"]))
def test_max_min_and_indices_equal_in_memory_bit_for_bit(case, kind):
    shape, geometry, chunks = case
    op = ops_of(f"{kind}_pool", len(shape) - 2)
    x = np.random.default_rng(1).integers(-3, 4, shape).astype(np.float32)  # many ties
    x.flat[::7] = np.nan
    (y0, i0), (y, i) = both(op, x, chunks, return_indices=True, **geometry)
    assert y.dtype == y0.dtype and np.array_equal(y, y0, equal_nan=True)
    assert i.dtype == np.int64 and np.array_equal(i, i0)


@SETTINGS
@given(sliding(), st.booleans())
def test_avg_equals_in_memory_to_rounding(case, include_pad):
    shape, geometry, chunks = case
    geometry.pop("dilation")
    op = ops_of("avg_pool", len(shape) - 2)
    x = distinct(shape)
    y0, y = both(op, x, chunks, count_include_pad=include_pad, **geometry)
    assert y.dtype == y0.dtype and y.shape == y0.shape
    np.testing.assert_allclose(y, y0, rtol=1e-6, atol=1e-6)


@SETTINGS
@given(sliding(), st.sampled_from(["max", "min", "avg", "lp"]),
       st.sampled_from(["first", "split"]))
def test_vjp_on_dask_equals_in_memory(case, kind, ties):
    shape, geometry, chunks = case
    rank = len(shape) - 2
    x = distinct(shape, np.float64)
    if kind in ("max", "min"):
        op, args, geometry = ops_of(f"{kind}_pool", rank), (), dict(geometry, ties=ties)
    else:
        geometry.pop("dilation"), geometry.pop("padding")
        op, args = (ops_of("avg_pool", rank), ()) if kind == "avg" else (ops_of("lp_pool", rank), (2,))
    try:
        y0, pullback0 = ndpool.vjp(op, x, *args, **geometry)
    except ValueError:
        assume(False)
    y, pullback = ndpool.vjp(op, da.from_array(x, chunks=chunks), *args, **geometry)
    dy = distinct(y0.shape, np.float64, seed=2)
    dy_chunks = tuple(max(1, n // 2) for n in y0.shape)
    for given_dy in (dy, da.from_array(dy, chunks=dy_chunks)):
        dx = pullback(given_dy)
        assert isinstance(dx, da.Array) and dx.chunks == tuple(chunks)
        np.testing.assert_allclose(dx.compute(scheduler="sync"), pullback0(dy),
                                   rtol=1e-12, atol=1e-12)


@FEW
@given(st.integers(1, 3), st.data())
def test_adaptive_and_fractional_equal_in_memory(rank, data):
    spatial = tuple(data.draw(st.lists(st.integers(2, 12), min_size=rank, max_size=rank)))
    shape = (2, 2) + spatial
    chunks = data.draw(chunking(shape))
    out = tuple(data.draw(st.integers(1, n)) for n in spatial)
    x = distinct(shape)
    (y0, i0), (y, i) = both(ops_of("adaptive_max_pool", rank), x, chunks, out,
                            return_indices=True)
    assert np.array_equal(y, y0) and np.array_equal(i, i0)
    a0, a = both(ops_of("adaptive_avg_pool", rank), x, chunks, out)
    # float32 sums in another order: rounding of the inputs' size, not of a mean near 0
    np.testing.assert_allclose(a, a0, rtol=1e-6, atol=1e-6 * float(np.abs(x).max()))
    if rank > 1:
        kernel = tuple(data.draw(st.integers(1, max(1, n - o + 1))) for n, o in zip(spatial, out))
        op = ops_of("fractional_max_pool", rank)
        (f0, j0), (f, j) = both(op, x, chunks, kernel, output_size=out, rng=5,
                                return_indices=True)
        assert np.array_equal(f, f0) and np.array_equal(j, j0)
        y0, pb0 = ndpool.vjp(op, x, kernel, output_size=out, rng=5)
        y, pb = ndpool.vjp(op, da.from_array(x, chunks=chunks), kernel, output_size=out, rng=5)
        dy = distinct(y0.shape, seed=3)
        assert np.array_equal(pb(dy).compute(scheduler="sync"), pb0(dy))


@FEW
@given(st.integers(1, 3), st.data(), st.sampled_from([np.float32, np.int16]))
def test_global_pools_reduce_blocks_as_in_memory(rank, data, dtype):
    spatial = tuple(data.draw(st.lists(st.integers(1, 9), min_size=rank, max_size=rank)))
    shape = (2, 3) + spatial
    chunks = data.draw(chunking(shape))
    x = np.random.default_rng(4).integers(-2, 3, shape).astype(dtype)  # ties across blocks
    keepdims = data.draw(st.booleans())
    g0, g = both(ndpool.global_max_pool, x, chunks, keepdims=keepdims)
    assert g.dtype == g0.dtype and np.array_equal(g, g0)
    y0, pb0 = ndpool.vjp(ndpool.global_max_pool, x, keepdims=keepdims)
    y, pb = ndpool.vjp(ndpool.global_max_pool, da.from_array(x, chunks=chunks),
                       keepdims=keepdims)
    dy = np.arange(1.0, 1 + y0.size).reshape(y0.shape)
    assert np.array_equal(pb(dy).compute(scheduler="sync"), pb0(dy))  # to the first winner
    if dtype == np.float32:
        m0, m = both(ndpool.global_avg_pool, x, chunks, keepdims=keepdims)
        np.testing.assert_allclose(m, m0, rtol=1e-6, atol=1e-7)
        y0, pb0 = ndpool.vjp(ndpool.global_avg_pool, x, keepdims=keepdims)
        y, pb = ndpool.vjp(ndpool.global_avg_pool, da.from_array(x, chunks=chunks),
                           keepdims=keepdims)
        np.testing.assert_allclose(pb(dy).compute(scheduler="sync"), pb0(dy), rtol=1e-6)


def test_global_max_nan_wins_across_blocks():
    x = np.zeros((1, 1, 6, 6), np.float32)
    x[0, 0, 1, 1] = x[0, 0, 4, 4] = np.nan   # the last NaN takes the gradient, as in memory
    y, pb = ndpool.vjp(ndpool.global_max_pool, da.from_array(x, chunks=3))
    y0, pb0 = ndpool.vjp(ndpool.global_max_pool, x)
    assert np.isnan(y.compute()).all()
    assert np.array_equal(pb(np.ones((1, 1))).compute(), pb0(np.ones((1, 1))))


@FEW
@given(st.integers(1, 3), st.data())
def test_max_unpool_inverts_pooling_on_dask(rank, data):
    spatial = tuple(data.draw(st.lists(st.integers(2, 10), min_size=rank, max_size=rank)))
    kernel = data.draw(st.integers(2, 3))
    stride = data.draw(st.integers(1, 3))
    x = distinct((1, 2) + spatial)
    try:
        y0, i0 = ops_of("max_pool", rank)(x, kernel, stride, return_indices=True)
    except ValueError:
        assume(False)
    chunks = data.draw(chunking(y0.shape))
    unpool = ops_of("max_unpool", rank)
    z0, pb0 = ndpool.vjp(unpool, y0, i0, kernel, stride, output_size=spatial)
    z, pb = ndpool.vjp(unpool, da.from_array(y0, chunks=chunks),
                       da.from_array(i0, chunks=data.draw(chunking(i0.shape))), kernel,
                       stride, output_size=spatial)
    assert np.array_equal(z.compute(scheduler="sync"), z0)
    dy = distinct(z0.shape, seed=6)
    assert np.array_equal(pb(dy).compute(scheduler="sync"), pb0(dy))


def test_channels_last_and_unbatched_input():
    x = distinct((2, 9, 8, 3))
    d = da.from_array(x, chunks=(1, 4, 3, 2))
    y, i = ndpool.max_pool2d(d, 3, 2, 1, layout="channels_last", return_indices=True)
    y0, i0 = ndpool.max_pool2d(x, 3, 2, 1, layout="channels_last", return_indices=True)
    assert np.array_equal(y.compute(), y0) and np.array_equal(i.compute(), i0)
    u = ndpool.avg_pool1d(da.from_array(x[0, 0], chunks=2), 3, 2)
    np.testing.assert_allclose(u.compute(), ndpool.avg_pool1d(x[0, 0], 3, 2), rtol=1e-6)


def test_calling_an_op_computes_nothing():
    calls = []

    def source(block):
        calls.append(block.shape)
        return block

    x = da.from_array(distinct((1, 2, 12, 12)), chunks=5).map_blocks(
        source, meta=np.empty((0,) * 4, np.float32))
    y, pullback = ndpool.vjp(ndpool.max_pool2d, x, 3, stride=2, padding=1)
    dx = pullback(np.ones(y.shape, np.float32))
    ndpool.global_avg_pool(x), ndpool.lp_pool2d(x, 2, 2)
    assert calls == []            # building every graph read no block
    dx.compute(scheduler="sync")
    assert calls


def test_each_block_runs_on_one_core_thread(monkeypatch):
    from ndpool.backends import compiled
    seen, reduce = [], compiled.reduce

    def spy(*args, **kwargs):
        seen.append(ndpool.get_num_threads())
        return reduce(*args, **kwargs)

    monkeypatch.setattr(compiled, "reduce", spy)
    ndpool.set_num_threads(2)
    x = da.from_array(distinct((1, 1, 16, 16)), chunks=8)
    ndpool.max_pool2d(x, 2).compute(scheduler="threads", num_workers=2)
    assert seen and set(seen) == {1}
    seen.clear()
    with ndpool.block_threads(2):
        y = ndpool.max_pool2d(x, 2)
    y.compute(scheduler="sync")
    assert set(seen) == {2}
    assert ndpool.get_num_threads() == 2   # the caller's own count is untouched


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
def test_every_scheduler(scheduler):
    x = distinct((2, 2, 11, 10))
    d = da.from_array(x, chunks=(1, 2, 4, 3))
    y, pullback = ndpool.vjp(ndpool.max_pool2d, d, 3, stride=2, padding=1,
                             return_indices=True)
    (y0, i0), pullback0 = ndpool.vjp(ndpool.max_pool2d, x, 3, stride=2, padding=1,
                                     return_indices=True)
    dy = distinct(y0.shape, seed=7)
    m = ndpool.avg_pool2d(d, 2, ceil_mode=True)
    g = ndpool.global_max_pool(d)
    got = dask.compute(y[0], y[1], pullback(dy), m, g, scheduler=scheduler, num_workers=2)
    assert np.array_equal(got[0], y0) and np.array_equal(got[1], i0)
    assert np.array_equal(got[2], pullback0(dy))
    np.testing.assert_allclose(got[3], ndpool.avg_pool2d(x, 2, ceil_mode=True), rtol=1e-6)
    assert np.array_equal(got[4], ndpool.global_max_pool(x))


def test_distributed_local_cluster_with_worker_processes():
    distributed = pytest.importorskip("distributed")
    x = distinct((1, 2, 20, 18))
    d = da.from_array(x, chunks=(1, 1, 7, 6))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        y, pullback = ndpool.vjp(ndpool.avg_pool2d, d, 4, stride=3, padding=2)
        f, i = ndpool.fractional_max_pool2d(d, 3, output_size=(7, 6), rng=1,
                                            return_indices=True)
        dy = np.ones(y.shape, np.float32)
        got = client.compute([y, pullback(dy), f, i], sync=True)
    y0, pullback0 = ndpool.vjp(ndpool.avg_pool2d, x, 4, stride=3, padding=2)
    f0, i0 = ndpool.fractional_max_pool2d(x, 3, output_size=(7, 6), rng=1, return_indices=True)
    np.testing.assert_allclose(got[0], y0, rtol=1e-6)
    np.testing.assert_allclose(got[1], pullback0(dy), rtol=1e-6)
    assert np.array_equal(got[2], f0) and np.array_equal(got[3], i0)


def test_dask_input_errors_name_the_op():
    x = da.from_array(distinct((1, 1, 8, 8)), chunks=4)
    with pytest.raises(ValueError, match="max_pool2d: padding=3 must be at most half"):
        ndpool.max_pool2d(x, 4, padding=3)
    with pytest.raises(TypeError, match="avg_pool2d: x has dtype int"):
        ndpool.avg_pool2d(x.astype(np.int32), 2)
    unknown = x[x.sum(axis=(1, 2, 3)) > -1e9]      # boolean indexing: sizes known later
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        ndpool.max_pool2d(unknown, 2)
    y, pullback = ndpool.vjp(ndpool.max_pool2d, x, 2)
    with pytest.raises(ValueError, match=r"max_pool2d pullback: dy has shape \(1, 1, 3, 3\)"):
        pullback(np.ones((1, 1, 3, 3)))
    bad = da.zeros((1, 1, 4, 4), chunks=2, dtype=np.int64)   # every index at cell 0
    with pytest.raises(ValueError, match="inside their own pooling window"):
        ndpool.max_unpool2d(da.ones((1, 1, 4, 4), chunks=2), bad, 2).compute()


def test_blocks_use_the_backend_in_force_where_the_graph_was_built(monkeypatch):
    from ndpool.backends import reference
    calls, original = [], reference.reduce
    monkeypatch.setattr(reference, "reduce",
                        lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    x = da.from_array(distinct((1, 1, 8, 8)), chunks=4)
    with ndpool.use_backend("reference"):
        y = ndpool.max_pool2d(x, 2)
        g = ndpool.global_max_pool(x)
    dask.compute(y, g, scheduler="threads", num_workers=2)   # worker threads, outside the block
    assert len(calls) == 4 + 4


def test_new_vocabulary_on_dask_input():
    """The framework forms reach the Dask path too: column-major indices (ONNX's
    storage_order=1), explicit (before, after) pads, and channels-last global pools and
    unpooling, each equal to the in-memory op, gradients included."""
    x = distinct((2, 3, 9, 10))
    lazy = da.from_array(x, chunks=(1, 2, 4, 3))
    y, idx = ndpool.max_pool2d(x, 3, 2, ((0, 2), (1, 1)), return_indices=True, storage_order=1)
    got_y, got_idx = ndpool.max_pool2d(lazy, 3, 2, ((0, 2), (1, 1)), return_indices=True,
                                       storage_order=1)
    np.testing.assert_array_equal(got_y.compute(), y)
    np.testing.assert_array_equal(got_idx.compute(), idx)

    last = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    lazy_last = da.from_array(last, chunks=(1, 4, 5, 2))
    for op in (ndpool.global_max_pool, ndpool.global_avg_pool):
        for keepdims in (False, True):
            want, pull = ndpool.vjp(op, last, keepdims=keepdims, layout="channels_last")
            got, lazy_pull = ndpool.vjp(op, lazy_last, keepdims=keepdims, layout="channels_last")
            np.testing.assert_allclose(got.compute(), want, rtol=1e-6)
            dy = np.arange(want.size, dtype=np.float32).reshape(want.shape)
            np.testing.assert_allclose(np.asarray(lazy_pull(dy)), pull(dy), rtol=1e-6)

    pooled, where = ndpool.max_pool2d(last, 2, layout="channels_last", return_indices=True)
    want = ndpool.max_unpool2d(pooled, where, 2, layout="channels_last")
    got = ndpool.max_unpool2d(da.from_array(pooled, chunks=(1, 2, 3, 2)),
                              da.from_array(where, chunks=(1, 2, 3, 2)), 2,
                              layout="channels_last")
    assert isinstance(got, da.Array)
    np.testing.assert_array_equal(got.compute(), want)
