"""The compiled core under threads: many Python threads calling it at once, its own
thread pool at 1 and 2 threads, the thread-count setting, and living beside PyTorch's
OpenMP runtime in one process. Every result must equal the single-threaded one exactly.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import ndpool
from oracle import available_backends

pytestmark = pytest.mark.skipif("compiled" not in available_backends(),
                                reason="the compiled core is not built")


@pytest.fixture
def restore_threads():
    before = ndpool.get_num_threads()
    yield
    ndpool.set_num_threads(before)


def _dy(y):
    """A fixed upstream gradient for output y (float64 for integer outputs)."""
    return np.random.default_rng(y.size).standard_normal(y.shape).astype(
        y.dtype if y.dtype.kind == "f" else np.float64)


def grad(op, x, *args, **kwargs):
    """A call of op's vjp that returns (result, dx) for the fixed gradient."""
    def call():
        result, pullback = ndpool.vjp(op, x, *args, **kwargs)
        y = result[0] if isinstance(result, tuple) else result
        return result, pullback(_dy(y))
    return call


def _jobs():
    """(name, call) pairs: mixed ops and sizes, many planes or one plane (row split),
    channels-last with many lanes, forward and backward."""
    rng = np.random.default_rng(0)
    one_plane = rng.integers(-50, 50, (1, 1, 192, 160)).astype(np.float32)
    many_planes = rng.standard_normal((3, 8, 40, 36))
    lanes = rng.standard_normal((1, 48, 40, 64)).astype(np.float32)    # (N, H, W, C)
    volume = rng.standard_normal((1, 1, 24, 30, 28)).astype(np.float32)
    line = rng.integers(0, 255, (1, 1, 30000)).astype(np.uint8)

    return [
        ("max2d one plane", lambda: ndpool.max_pool2d(one_plane, 3, 2, 1, return_indices=True)),
        ("min2d one plane dilated", lambda: ndpool.min_pool2d(one_plane, 5, 1, 2, dilation=2)),
        ("avg2d one plane", lambda: ndpool.avg_pool2d(one_plane, 5, 1, 2)),
        ("avg2d many planes ceil", lambda: ndpool.avg_pool2d(many_planes, 3, 2, 1, True,
                                                             False)),
        ("max2d many planes same", lambda: ndpool.max_pool2d(many_planes, 4, 3, "same")),
        ("max2d lanes", lambda: ndpool.max_pool2d(lanes, 2, layout="channels_last",
                                                  return_indices=True)),
        ("avg2d lanes", lambda: ndpool.avg_pool2d(lanes, 3, 2, 1, layout="channels_last")),
        ("max3d volume", lambda: ndpool.max_pool3d(volume, 3, 2, 1, return_indices=True)),
        ("avg3d volume", lambda: ndpool.avg_pool3d(volume, (2, 3, 4), 1)),
        ("max1d uint8 line", lambda: ndpool.max_pool1d(line, 7, 3, 3)),
        ("adaptive max", lambda: ndpool.adaptive_max_pool2d(one_plane, (17, 13), True)),
        ("adaptive avg", lambda: ndpool.adaptive_avg_pool3d(volume, 5)),
        ("fractional", lambda: ndpool.fractional_max_pool2d(many_planes, 2, output_size=15,
                                                            return_indices=True, rng=3)),
        ("global max", lambda: ndpool.global_max_pool(many_planes)),
        ("global avg one plane", lambda: ndpool.global_avg_pool(one_plane)),
        ("grad max2d first", grad(ndpool.max_pool2d, one_plane, 3, 2, 1)),
        ("grad max2d split", grad(ndpool.max_pool2d, one_plane, 2, ties="split")),
        ("grad min2d lanes", grad(ndpool.min_pool2d, lanes, 3, 1, 1,
                                  layout="channels_last")),
        ("grad avg2d many", grad(ndpool.avg_pool2d, many_planes, 3, 2, 1)),
        ("grad avg3d", grad(ndpool.avg_pool3d, volume, 3, 1, 1, count_include_pad=False)),
        ("grad max3d indices", grad(ndpool.max_pool3d, volume, 2, return_indices=True)),
        ("grad unpool", grad(ndpool.max_unpool2d,
                             *ndpool.max_pool2d(one_plane, 2, return_indices=True), 2)),
    ]


def _large_plane_jobs():
    """(name, call, exact) for planes large enough that the core splits each one among
    the threads (bands of rows, parts of cells, chunks of lanes): every forward and
    backward path on one image or one volume. `exact`: max/min/indices, compared bit for
    bit with the reference backend, and so are their gradients (the reference adds in
    output order, as PyTorch does); the rest to rounding."""
    rng = np.random.default_rng(5)
    image = rng.standard_normal((1, 1, 330, 300)).astype(np.float32)
    half = rng.standard_normal((1, 1, 260, 270)).astype(np.float16)
    volume = rng.standard_normal((1, 1, 48, 50, 46)).astype(np.float32)
    lanes = rng.standard_normal((1, 96, 90, 64)).astype(np.float32)   # (N, H, W, C)
    big = rng.standard_normal((1, 1, 700, 650))

    pooled, where = ndpool.max_pool2d(image, 3, 2, 1, return_indices=True)
    return [
        ("running max k9", lambda: ndpool.max_pool2d(image, 9, 1, "same"), True),
        ("running min k15", lambda: ndpool.min_pool2d(image, 15, 1, 7), True),
        ("running max lanes", lambda: ndpool.max_pool2d(lanes, 9, 1, 4, layout="channels_last"), True),
        ("running avg k9", lambda: ndpool.avg_pool2d(image, 9, 1, 4), False),
        ("rows max k3", lambda: ndpool.max_pool2d(image, 3, 1, 1), True),
        ("global avg", lambda: ndpool.global_avg_pool(big), False),
        ("global max", lambda: ndpool.global_max_pool(big), True),
        ("grad max k9 winners", grad(ndpool.max_pool2d, image, 9, 1, "same", return_indices=True), True),
        ("grad max k5 float16", grad(ndpool.max_pool2d, half, 5, 1, 2), False),
        ("grad max k3 s2", grad(ndpool.max_pool2d, image, 3, 2, 1), True),
        ("grad min k3 s1", grad(ndpool.min_pool2d, image, 3, 1, 1), True),
        ("grad max3d k3", grad(ndpool.max_pool3d, volume, 3, 1, 1), True),
        ("grad max lanes k5", grad(ndpool.max_pool2d, lanes, 5, 1, 2, layout="channels_last"), True),
        ("grad avg k9", grad(ndpool.avg_pool2d, image, 9, 1, 4), False),
        ("grad avg k2", grad(ndpool.avg_pool2d, image, 2), False),
        ("grad global avg", grad(ndpool.global_avg_pool, big), False),
        ("grad max split", grad(ndpool.max_pool2d, image, 3, 1, 1, ties="split"), False),
        ("unpool", lambda: ndpool.max_unpool2d(pooled, where, 3, 2, 1, output_size=image.shape[-2:]), True),
        ("grad unpool", grad(ndpool.max_unpool2d, pooled, where, 3, 2, 1, output_size=image.shape[-2:]), False),
    ]


def _close(a, b, name, exact):
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b), name
        for i, (p, q) in enumerate(zip(a, b)):
            _close(p, q, f"{name}[{i}]", exact)
        return
    assert a.shape == b.shape and a.dtype == b.dtype, name
    if exact or a.dtype.kind != "f":
        np.testing.assert_array_equal(a, b, err_msg=name)
    else:
        tolerance = 2e-2 if a.dtype == np.float16 else 1e-5 if a.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance, err_msg=name)


@pytest.mark.parametrize("name", [name for name, _, _ in _large_plane_jobs()])
def test_large_planes_split_among_threads_match_the_reference(name, restore_threads):
    _, call, exact = next(job for job in _large_plane_jobs() if job[0] == name)
    ndpool.set_num_threads(2)
    ours = call()
    with ndpool.use_backend("reference"):
        expected = call()
    _close(ours, expected, name, exact)
    ndpool.set_num_threads(1)
    _same(call(), ours, name)   # and the split changes no bit


def _same(a, b, name):
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b), name
        for i, (p, q) in enumerate(zip(a, b)):
            _same(p, q, f"{name}[{i}]")
        return
    assert a.shape == b.shape and a.dtype == b.dtype, name
    np.testing.assert_array_equal(a, b, err_msg=name)


def test_many_python_threads_at_once_match_single_threaded(restore_threads):
    jobs = _jobs()
    ndpool.set_num_threads(1)
    expected = {name: call() for name, call in jobs}
    ndpool.set_num_threads(2)
    work = [job for _ in range(8) for job in jobs]
    np.random.default_rng(1).shuffle(work)
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [(name, pool.submit(call)) for name, call in work]
        for name, future in futures:
            _same(expected[name], future.result(timeout=120), name)


def test_changing_the_thread_count_while_threads_compute(restore_threads):
    """set_num_threads from one Python thread while others are inside the core."""
    jobs = _jobs()[:10]
    ndpool.set_num_threads(1)
    expected = {name: call() for name, call in jobs}

    def toggle():
        for i in range(200):
            ndpool.set_num_threads(1 + i % 4)

    with ThreadPoolExecutor(max_workers=6) as pool:
        toggler = pool.submit(toggle)
        futures = [(name, pool.submit(call)) for _ in range(3) for name, call in jobs]
        for name, future in futures:
            _same(expected[name], future.result(timeout=120), name)
        toggler.result(timeout=120)


def test_threads_and_backends_are_independent_per_thread(restore_threads):
    """Python threads each choosing a backend with use_backend do not disturb each other."""
    x = np.random.default_rng(2).standard_normal((2, 3, 33, 31))

    def run(backend):
        with ndpool.use_backend(backend):
            return ndpool.avg_pool2d(x, 3, 2, 1), ndpool.max_pool2d(x, 3, 2, 1)

    ndpool.set_num_threads(2)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, ["compiled", "reference"] * 8))
    for avg, top in results[2:]:
        np.testing.assert_allclose(avg, results[0][0], rtol=1e-12)
        np.testing.assert_array_equal(top, results[0][1])


@pytest.mark.parametrize("name", [name for name, _ in _jobs()])
def test_one_and_two_threads_agree_exactly(name, restore_threads):
    call = dict(_jobs())[name]
    ndpool.set_num_threads(1)
    one = call()
    ndpool.set_num_threads(2)
    _same(one, call(), name)


def test_set_num_threads_round_trips(restore_threads):
    for n in (1, 2, 3, 7, 1):
        ndpool.set_num_threads(n)
        assert ndpool.get_num_threads() == n
    ndpool.set_num_threads(np.int64(2))
    assert ndpool.get_num_threads() == 2
    # more threads than cores still computes the same thing
    x = np.random.default_rng(3).standard_normal((1, 1, 64, 64))
    ndpool.set_num_threads(1)
    expected = ndpool.max_pool2d(x, 3, 1, 1)
    ndpool.set_num_threads(16)
    np.testing.assert_array_equal(ndpool.max_pool2d(x, 3, 1, 1), expected)


@pytest.mark.parametrize("bad", [0, -1, -100, 1.5, 2.0, "2", None, True, False, [2]])
def test_set_num_threads_rejects_non_positive_and_non_int(bad, restore_threads):
    before = ndpool.get_num_threads()
    with pytest.raises(ValueError, match="set_num_threads"):
        ndpool.set_num_threads(bad)
    assert ndpool.get_num_threads() == before


def _python(code: str, **env):
    environment = dict(os.environ, **env)
    # -S as the parent when it runs without site (scripts/sanitize.sh's isolated build)
    flags = ["-S"] if sys.flags.no_site else []
    return subprocess.run([sys.executable, *flags, "-c", textwrap.dedent(code)], env=environment,
                          capture_output=True, text=True, timeout=240)


@pytest.mark.parametrize("value, expected", [("1", 1), ("2", 2), ("5", 5)])
def test_environment_variable_sets_the_default(value, expected):
    done = _python("import ndpool; print(ndpool.get_num_threads())", NDPOOL_NUM_THREADS=value)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(expected)


@pytest.mark.parametrize("value", ["0", "-3", "many", ""])
def test_bad_environment_variable_falls_back_to_a_positive_default(value):
    done = _python("import ndpool; print(ndpool.get_num_threads())", NDPOOL_NUM_THREADS=value)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) >= 1


TORCH_BESIDE = """
    import numpy as np
    {first}
    {second}
    torch.set_num_threads(2)
    ndpool.set_num_threads(2)
    x = np.random.default_rng(0).standard_normal((2, 4, 65, 67)).astype(np.float32)
    for _ in range(3):
        t = torch.nn.functional.max_pool2d(torch.from_numpy(x), 3, 2, 1)
        y = ndpool.max_pool2d(x, 3, 2, 1)
        assert np.array_equal(t.numpy(), y)
        t = torch.nn.functional.avg_pool2d(torch.from_numpy(x), 3, 2, 1)
        y = ndpool.avg_pool2d(x, 3, 2, 1)
        assert np.allclose(t.numpy(), y, rtol=1e-5, atol=1e-6)
    print("ok")
"""


@pytest.mark.parametrize("order", ["torch first", "ndpool first"])
def test_torch_in_the_same_process(order):
    """PyTorch's OpenMP workers and the core's pool live in one process (a subprocess,
    so a crash fails this test instead of ending the run)."""
    pytest.importorskip("torch")
    imports = ["import torch", "import ndpool"]
    if order == "ndpool first":
        imports.reverse()
    done = _python(TORCH_BESIDE.format(first=imports[0], second=imports[1]))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
