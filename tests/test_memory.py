"""Memory traffic of the compiled backend: a forward pass allocates its outputs and
nothing else (NumPy's allocations are traced by tracemalloc), so a contiguous input is
never copied; any other view is copied at most once.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import ndpool
from oracle import available_backends, traced_peak

pytestmark = pytest.mark.skipif("compiled" not in available_backends(),
                                reason="the compiled core is not built")

SLACK = 64 * 1024   # Window tables, divisors, small Python objects


def _bytes(result):
    parts = result if isinstance(result, tuple) else (result,)
    return sum(part.nbytes for part in parts)


def _reference(call):
    with ndpool.use_backend("reference"):
        return call()


X = np.random.default_rng(0).standard_normal((1, 4, 512, 512)).astype(np.float32)  # 4 MiB
CASES = {
    "max 2": lambda x: ndpool.max_pool2d(x, 2),
    "avg 3 s2 p1": lambda x: ndpool.avg_pool2d(x, 3, 2, 1),
    "min 3 s1 p1": lambda x: ndpool.min_pool2d(x, 3, 1, 1),
    "max same dilated": lambda x: ndpool.max_pool2d(x, 3, 2, "same", dilation=2),
    "avg ceil no pad count": lambda x: ndpool.avg_pool2d(x, 3, 2, 1, True, False),
    "max indices": lambda x: ndpool.max_pool2d(x, 3, 2, 1, return_indices=True),
    "adaptive max": lambda x: ndpool.adaptive_max_pool2d(x, (100, 70)),
    "adaptive avg": lambda x: ndpool.adaptive_avg_pool2d(x, 33),
    "global max": lambda x: ndpool.global_max_pool(x),
}


@pytest.mark.parametrize("name", list(CASES))
def test_contiguous_forward_allocates_only_its_outputs(name):
    call = CASES[name]
    assert X.flags.c_contiguous
    with ndpool.use_backend("compiled"):
        result, peak = traced_peak(lambda: call(X))
    # (a copy of the 4 MiB input would not fit under this bound either)
    assert peak <= _bytes(result) + SLACK, (
        f"{name}: traced peak {peak} bytes for {_bytes(result)} bytes of output")
    expected = _reference(lambda: call(X))
    for got, want in zip(result if isinstance(result, tuple) else (result,),
                         expected if isinstance(expected, tuple) else (expected,)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("layout_shape", [(1, 512, 512, 4), (512, 512, 4)])
def test_contiguous_channels_last_is_not_copied(layout_shape, kind):
    x = np.ascontiguousarray(np.moveaxis(X[0], 0, -1)).reshape(layout_shape)
    call = {"max": lambda: ndpool.max_pool2d(x, 2, layout="channels_last"),
            "avg": lambda: ndpool.avg_pool2d(x, 3, 2, 1, layout="channels_last")}[kind]
    with ndpool.use_backend("compiled"):
        result, peak = traced_peak(call)
    assert peak <= _bytes(result) + SLACK
    np.testing.assert_allclose(result, _reference(call), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.uint8, np.int32])
def test_other_dtypes_are_not_converted(dtype):
    x = (X[:, :2] * 10).astype(dtype)
    with ndpool.use_backend("compiled"):
        result, peak = traced_peak(lambda: ndpool.max_pool2d(x, 3, 2, 1))
    assert result.dtype == x.dtype
    assert peak <= _bytes(result) + SLACK


def test_unbatched_and_1d_3d_inputs_are_not_copied():
    cases = [(X[0], lambda x: ndpool.max_pool2d(x, 2)),
             (X.reshape(4, 512 * 512), lambda x: ndpool.max_pool1d(x, 4)),
             (X.reshape(1, 4, 64, 64, 64), lambda x: ndpool.max_pool3d(x, 2))]
    for x, call in cases:
        with ndpool.use_backend("compiled"):
            result, peak = traced_peak(lambda: call(x))
        assert peak <= _bytes(result) + SLACK, x.shape


@pytest.mark.parametrize("view", ["reversed", "strided", "fortran"])
def test_other_views_are_copied_at_most_once(view):
    base = {"reversed": X[..., ::-1], "strided": np.repeat(X, 2, axis=-1)[..., ::2],
            "fortran": np.asfortranarray(X)}[view]
    with ndpool.use_backend("compiled"):
        result, peak = traced_peak(lambda: ndpool.max_pool2d(base, 2))
    assert peak <= base.nbytes + _bytes(result) + SLACK
    np.testing.assert_array_equal(result, _reference(lambda: ndpool.max_pool2d(base, 2)))


def test_the_input_buffer_is_shared_not_copied():
    """The core reads the caller's buffer: poisoning the input changes the result in the
    way reading it (not a stale copy) would."""
    x = X.copy()
    with ndpool.use_backend("compiled"):
        first = ndpool.max_pool2d(x, 2)
        x[0, 0, 0, 0] = np.inf
        second = ndpool.max_pool2d(x, 2)
    assert second[0, 0, 0, 0] == np.inf and first[0, 0, 0, 0] != np.inf


@pytest.mark.skipif(bool(os.environ.get("NDPOOL_SANITIZE_BUILD")),
                    reason="under AddressSanitizer the impossible allocation aborts")
def test_regression_scratch_is_sized_by_the_input_not_the_kernel():
    """Found here: the row scratch was sized by the kernel's extent, so a huge kernel that
    the padding makes legal asked for terabytes (std::bad_alloc)."""
    x = np.arange(8.0).reshape(1, 2, 4)
    with ndpool.use_backend("compiled"):
        y = ndpool.max_pool1d(x, 2**30, padding="same")
    np.testing.assert_array_equal(y, [[[3.0], [7.0]]])


def test_regression_scratch_sized_by_kernel_with_explicit_padding():
    """In a sub-process: the failure may end the process."""
    import subprocess
    import sys
    code = ("import numpy as np, ndpool\n"
            "x = np.arange(8.0).reshape(1, 2, 4)\n"
            "print(ndpool.max_pool1d(x, 2**30 + 1, 1, 2**29).tolist())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == str([[[3.0] * 4, [7.0] * 4]])


def test_plans_are_cached_per_window_but_not_for_fractional_tables():
    """The core's parsed axis tables (Plans) are cached per Window, so repeated calls
    reuse one; fractional pooling draws per-plane tables every call, which must not
    pile up in that cache."""
    from ndpool.backends import compiled
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9)).astype(np.float32)
    with ndpool.use_backend("compiled"):
        ndpool.max_pool2d(x, 3, 2)
        plans = dict(compiled._plans)
        ndpool.max_pool2d(x, 3, 2)
        assert compiled._plans == plans and plans   # the same Plan objects, none added
        for seed in range(5):
            ndpool.fractional_max_pool2d(x, 2, output_size=4, rng=seed)
        assert compiled._plans == plans


def test_plan_rejects_malformed_tables():
    from ndpool import _core
    table = np.zeros((1, 3), dtype=np.int64)
    good = (table, table, table, 1, 1, 3, 1)
    with pytest.raises(ValueError, match="2-D and of one shape"):
        _core.plan((good, good, (table, np.zeros((1, 2), np.int64), table, 1, 1, 3, 1)))
    with pytest.raises(ValueError, match="three axes"):
        _core.plan((good, good))
