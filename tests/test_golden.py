"""ndpool against the golden vectors PyTorch wrote (scripts/make_golden.py): no PyTorch
needed. Max/min/unpool values and indices must match exactly, the rest to rounding."""
import json
import pathlib

import numpy as np
import pytest

import ndpool
from oracle import assert_close

GOLDEN = pathlib.Path(__file__).parent / "golden"
FILES = sorted(GOLDEN.glob("*.npz"))
EXACT = ("max_pool", "min_pool", "adaptive_max_pool", "fractional_max_pool", "max_unpool",
         "global_max_pool")


def load(path):
    with np.load(path) as data:       # no pickles: the call is a JSON string
        record = {key: data[key] for key in data.files}
    call = json.loads(str(record["call"]))
    resolve = lambda v: record[v["$array"]] if isinstance(v, dict) and "$array" in v else v
    args = [resolve(a) for a in call["args"]]
    kwargs = {k: resolve(v) for k, v in call["kwargs"].items()}
    return record, getattr(ndpool, call["op"]), args, kwargs


def test_golden_vectors_cover_every_op():
    ops = {json.loads(str(np.load(f)["call"]))["op"] for f in FILES}
    assert ops == set(ndpool.functional.__all__)
    assert sum(f.stat().st_size for f in FILES) < 1_000_000


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_golden(backend, path):
    record, op, args, kwargs = load(path)
    x = record["x"]
    exact = op.__name__.startswith(EXACT)
    with ndpool.use_backend(backend):
        result, pullback = ndpool.vjp(op, x, *args, **kwargs)
        y, indices = result if kwargs.get("return_indices") else (result, None)
        dx = pullback(record["dy"]) if "dy" in record else None
        if isinstance(dx, dict):   # an op of more inputs than x (attention_pool*): x's part
            dx = dx["x"]
    assert y.dtype == x.dtype
    assert_close(y, record["y"], x.dtype, exact=exact, what=f"{path.stem} forward")
    if "indices" in record:
        assert indices.dtype == np.int64
        np.testing.assert_array_equal(indices, record["indices"])
    if dx is not None:
        assert dx.dtype == x.dtype
        assert_close(dx, record["dx"], x.dtype, exact=False, scale=4,
                     what=f"{path.stem} input gradient")


def test_golden_needs_no_torch():
    """The golden tests pass in a process where ``import torch`` fails."""
    import subprocess
    import sys
    code = ("import sys, pytest; sys.modules['torch'] = None; "
            "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', sys.argv[1], "
            "'-k', 'reference and not needs_no_torch']))")
    run = subprocess.run([sys.executable, "-c", code, __file__], capture_output=True,
                         text=True, cwd=pathlib.Path(__file__).parent.parent)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert f"{len(FILES)} passed" in run.stdout
