"""Fuzzing: thousands of seeded random calls with random, mostly invalid arguments to every
public op and to ``vjp`` pullbacks. Each call may return or raise ValueError / TypeError;
any other exception, a crash or a hang (faulthandler ends the run after a while) fails.
"""
from __future__ import annotations

import faulthandler
import inspect
import random
import sys
import time

import numpy as np
import pytest

import ndpool
from oracle import available_backends

ALLOWED = (ValueError, TypeError)


class _Skipped(Exception):
    pass
CALLS = 20000
SLOW_CALL_S = 5.0
#: outputs this large (a legal unpooling or adaptive output size) take seconds just to
#: allocate and fill; a slow call that made one is not a hang
LARGE_OUTPUT = 2**28

OPS = [getattr(ndpool, name) for name in ndpool.__all__
       if callable(getattr(ndpool, name)) and hasattr(getattr(ndpool, name), "_ndpool_impl")]


def _rank(op) -> int:
    name = op.__name__
    return int(name[-2]) if name[-2].isdigit() else 2


def _arrays(r: random.Random, rank: int):
    """Inputs: mostly valid arrays of this rank in many dtypes and layouts, plus junk."""
    g = np.random.default_rng(r.randrange(2**32))
    spatial = tuple(r.choice([1, 2, 3, 5, 8]) for _ in range(rank))
    lead = r.choice([(2, 3), (1, 1), (3,), (0, 2), (2, 0), (1,)])
    dtype = r.choice([np.float32, np.float64, np.float16] * 3 + [
        np.int8, np.uint8, np.int32, np.int64, np.uint16, np.bool_, np.complex64, ">f4", ">i2",
        object, np.longdouble])
    shape = lead + spatial
    valid = (g.standard_normal(shape) * 4).astype(dtype) if np.dtype(dtype).kind != "O" \
        else np.ones(shape, dtype=object)
    if valid.size and np.dtype(dtype).kind == "f" and r.random() < 0.2:
        valid.flat[0] = r.choice([np.nan, np.inf, -np.inf])
    junk = [np.array(1.5), np.zeros(0), np.zeros((2, 0, 4)), np.zeros((1, 1) + (0,) * rank),
            np.zeros((1,) * (rank + 3)), np.zeros(spatial), np.array(["a", "b"]),
            [[1.0, 2.0], [3.0]], [[[1.0, 2.0, 3.0]]], None, "abc", 3, 2.5, {}, b"xy",
            np.zeros((2, 2) + spatial)[..., ::-1], np.ones((2, 2) + spatial).T]
    return valid if r.random() < 0.85 else r.choice(junk)


# Huge ints (2**31 and beyond, 2**63) must get ValueError, never OverflowError: see also
# test_regression_overflow_error, one case per argument.
def _ints(rank: int):
    good = [1, 2, 3, (2,) * rank, [1] * rank, np.int32(2), np.int64(1)]
    bad = [0, -1, -2**63, 2**62, 2**63, 2**40, 2**31, 2**30, True, False, 1.5, float("nan"),
           "2", None, (), (2,) * (rank + 1), (2,) * max(rank - 1, 0), (1, "a"), (None,) * rank,
           np.float64(2.0), np.array([2] * rank), {2: 2}]
    return good, bad


def _value(r: random.Random, name: str, op, rank: int, x):
    """A random value for parameter ``name``: valid about six times in seven."""
    good, bad = {
        "kernel_size": _ints(rank),
        "stride": (_ints(rank)[0] + [None], _ints(rank)[1]),
        "dilation": _ints(rank),
        "padding": ([0, 1, "same", "valid", (1,) * rank, (0,) * rank, "SAME_LOWER", (1,),
                     ((1, 2),) * rank, (2, 0) * rank, ((0, 0),) * 2 + ((1, 0),) * rank],
                    ["SAEM", "", "full", -1, 2**62, None, 1.0, True, (0,) * (rank + 2),
                     (-1,) * rank, ("same",) * rank, ((1, 2, 3),) * rank, ((1, -1),) * rank,
                     ((1, 1),) * (rank + 1), ((0, 1),) * (rank + 2), ((1.5, 1),) * rank,
                     ((2**62, 0),) * rank, ((9, 9),) * rank]),
        "storage_order": ([0, 1], [2, -1, True, "F", None, 1.0]),
        "ceil_mode": ([True, False, np.bool_(True)], [0, 1, None, "yes", 1.0]),
        "return_indices": ([True, False], [0, None, "no"]),
        "count_include_pad": ([True, False], [1, None, "x"]),
        "keepdims": ([True, False], [0, None, "x", 2]),
        "ties": (["first", "split"], ["FIRST", "last", None, 1, ""]),
        "layout": (["channels_first", "channels_last"], ["NCHW", "NHWC", None, 0]),
        "divisor_override": ([None, 1, 2, 7, np.int64(3)],
                             [0, -3, 1.5, True, "2", 2**62, float("inf")]),
        "norm_type": ([1, 2, 3.5, 0.5], [0, -1, float("inf"), float("nan"), None, "2", True,
                                         1e300, 2**62]),
        "output_size": ([1, 2, 3, (2,) * rank, (None,) * rank, [1] * rank],
                        [0, -1, None, (1,) * (rank + 1), 2**62, "2", 1.5, (1, "a"),
                         (None,) * (rank + 1), (2,) * max(rank - 1, 1)]),
        "output_ratio": ([None, 0.5, (0.5,) * rank, 0.75],
                         [0, 1, 1.5, -0.5, float("nan"), "x", (0.5,) * (rank + 1), True]),
        "rng": ([None, 0, 1, np.random.default_rng(0)], ["x", -1, 1.5, [1, 2]]),
        "boxes": ([np.array([[0, 1.0, 1.0, 4.0, 3.0], [0, -2.0, 0.5, 9.0, 1.0]]),
                   [np.array([[0.0, 0.0, 2.0, 2.0]])], np.zeros((0, 5)),
                   np.array([[0, 3.0, 3.0, 1.0, 1.0]])],
                  [np.zeros((2, 4)), np.array([[5, 0, 0, 1, 1.0]]), np.array([[0.5, 0, 0, 1, 1]]),
                   [np.zeros((1, 5))], np.full((1, 5), np.nan), np.array([[0, 0, 0, 1e30, 1]]),
                   "boxes", None, np.ones((1, 5), complex), [[0, 1, 2]]]),
        "spatial_scale": ([1.0, 0.5, 0.25, 1], [0, -1.0, float("nan"), float("inf"), "1", None,
                                                True, 1e300]),
        "sampling_ratio": ([-1, 0, 1, 2, -2**40], [1.5, None, "2", True, 2**40, 2**20]),
        "aligned": ([True, False], [0, None, "yes"]),
        "samples": ([None], [np.zeros((1, 1, rank)), np.full((9, 9, rank), 0.5), "x",
                             np.full((1, 1, rank), 2.0), np.zeros((1, 1, rank), np.int64),
                             np.full((1, 1, rank), np.nan), np.zeros(0), 0.5]),
        "training": ([True, False], [1, None, "yes"]),
        "filter_size": ([1, 2, 3, 4, 5, 7, (3,) * rank], [0, 8, -1, 3.0, None, True,
                                                          (3,) * (rank + 1)]),
        "padding_mode": (["reflect", "zeros", "replicate", "circular"],
                         ["reflection", "constant", "", None, 1]),
        "p": ([1.0, 2, 3.0, 0.5, np.array([2.0])], [0, -1, float("nan"), float("inf"), "3",
                                                    None, True, np.ones(7), [[1.0], [2.0, 3.0]]]),
        "eps": ([1e-6, 1e-3, 1], [0, -1e-6, float("nan"), None, "x", True]),
        "levels": ([(1, 2, 4), 1, (2,), [1, 3]], [(), 0, (1, 0), 1.5, None, "1", (2**40,)]),
        "mode": (["max", "avg"], ["sum", "MAX", None, 1]),
    }.get(name, ([None], [None]))
    if name == "samples" and isinstance(x, np.ndarray) and x.ndim >= rank + 1:
        lead = x.shape[:2] if x.ndim == rank + 2 else (1,) + x.shape[:1]
        good = [np.random.default_rng(1).random(lead + (rank,)) * 0.99, None]
    return r.choice(good) if r.random() < 0.85 else r.choice(bad)


def _unpool_inputs(r: random.Random, rank: int):
    """(x, indices) for max_unpool: from a real max pool most of the time."""
    g = np.random.default_rng(r.randrange(2**32))
    source = g.standard_normal((2, 2) + (6,) * rank).astype(r.choice([np.float32, np.int8]))
    y, idx = getattr(ndpool, f"max_pool{rank}d")(source, 2, return_indices=True)
    choice = r.randrange(9)
    if choice == 0:
        idx = idx.astype(np.float64)
    elif choice == 1:
        idx = idx[..., :1]
    elif choice == 2:
        idx = idx - 100
    elif choice == 3:
        idx = idx + 10**6
    elif choice == 4:
        idx = idx.astype(np.uint8)
    elif choice == 5:
        idx = r.choice([None, "x", [1, 2], np.array(3)])
    elif choice == 6:
        y = _arrays(r, rank)
    return y, idx


def _dy(r: random.Random, y):
    """An upstream gradient for output ``y``: often right, often wrong."""
    shape = getattr(y, "shape", ())
    return r.choice([
        np.ones(shape), np.ones(shape, np.float32), np.ones(shape, np.float16),
        np.ones(shape, np.int32), np.ones(shape, np.complex64), np.ones(shape, bool),
        np.ones(shape, object), np.ones(shape, ">f8"), np.ones(shape + (1,)),
        np.ones(shape[:-1]), np.ones(()), None, "dy", 1.0, [1.0],
        np.full(shape, np.nan), np.ones(shape)[..., ::-1] if shape else np.ones(()),
    ])


LAST_CALL, LAST_CALL_VALUES, LAST_OUTPUT_SIZE = [], [], [0]


def _brief(value):
    """A short description of a call's arguments for failure messages."""
    if isinstance(value, np.ndarray):
        return f"array{value.shape}:{value.dtype}"
    if isinstance(value, dict):
        return {k: _brief(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and len(value) < 6:
        return type(value)(_brief(v) for v in value)
    return repr(value)[:40]


def _call(r: random.Random, op):
    rank = _rank(op)
    params = list(inspect.signature(op).parameters.values())
    if op.__name__.startswith("max_unpool"):
        x, indices = _unpool_inputs(r, rank)
        args, rest = [x, indices], params[2:]
    else:
        x = _arrays(r, rank)
        args, rest = [x], params[1:]
    kwargs = {}
    for param in rest:
        required = param.default is inspect.Parameter.empty
        if required or r.random() < 0.5:
            value = _value(r, param.name, op, rank, x)
            if required and r.random() < 0.5:
                args.append(value)
            else:
                kwargs[param.name] = value
    if r.random() < 0.03:   # an unknown keyword or a surplus positional argument
        kwargs["bogus"] = 1
    LAST_CALL[:] = [_brief(args), _brief(kwargs)]
    LAST_CALL_VALUES[:] = [v for v in list(args[1:]) + list(kwargs.values())
                           if not isinstance(v, np.ndarray)]
    LAST_OUTPUT_SIZE[0] = 0
    if r.random() < 0.3:
        result, pullback = ndpool.vjp(op, *args, **kwargs)
        y = result[0] if isinstance(result, tuple) else result
        LAST_OUTPUT_SIZE[0] = y.size
        dx = pullback(_dy(r, y))
        assert isinstance(dx, np.ndarray)
        return dx
    result = op(*args, **kwargs)
    LAST_OUTPUT_SIZE[0] = (result[0] if isinstance(result, tuple) else result).size
    return result


@pytest.mark.parametrize("backend", available_backends())
def test_random_calls_only_raise_value_or_type_errors(backend):
    seed = {"compiled": 20240101, "reference": 7}[backend]
    calls = CALLS if backend == "compiled" else CALLS // 5
    r = random.Random(seed)
    failures, slow, outcomes = [], [], {"returned": 0, "ValueError": 0, "TypeError": 0}
    faulthandler.dump_traceback_later(240, exit=True)   # a hang ends the run, with tracebacks
    try:
        with ndpool.use_backend(backend), np.errstate(all="ignore"):
            for i in range(calls):
                op = OPS[r.randrange(len(OPS))]
                sub = random.Random(r.randrange(2**63))
                start = time.perf_counter()
                try:
                    _call(sub, op)
                    outcomes["returned"] += 1
                except ALLOWED as error:
                    outcomes["ValueError" if isinstance(error, ValueError) else "TypeError"] += 1
                except _Skipped:
                    continue
                except MemoryError:
                    # unpooling and adaptive pooling choose their output size from the
                    # arguments: a legal one of 2**30 cells per plane may not fit memory
                    if not op.__name__.startswith(("max_unpool", "adaptive")):
                        failures.append(f"call {i}: {op.__name__}{tuple(LAST_CALL)}: "
                                        "MemoryError")
                    continue
                except Exception as error:  # noqa: BLE001  anything else is a finding
                    failures.append(f"call {i}: {op.__name__}{tuple(LAST_CALL)}: "
                                    f"{type(error).__name__}: {str(error)[:200]}")
                elapsed = time.perf_counter() - start
                if elapsed > SLOW_CALL_S and LAST_OUTPUT_SIZE[0] <= LARGE_OUTPUT:
                    slow.append(f"call {i}: {op.__name__} took {elapsed:.1f} s")
    finally:
        faulthandler.cancel_dump_traceback_later()
    print(outcomes, file=sys.stderr)
    assert not failures, "\n".join(failures[:30])
    assert not slow, "\n".join(slow)
    # the fuzzer must reach the ops' real work, not only their argument checks
    assert outcomes["returned"] > calls // 10
    assert outcomes["ValueError"] > calls // 10 and outcomes["TypeError"] > calls // 20


def test_every_public_op_is_fuzzed():
    names = {op.__name__ for op in OPS}
    assert names == {n for n in ndpool.__all__ if "pool" in n or n.startswith("roi_")}
    assert len(names) >= 25


X4 = np.arange(8.0).reshape(1, 2, 4)


@pytest.mark.parametrize("call", [
    lambda: ndpool.max_pool1d(X4, 2, stride=2**63),
    lambda: ndpool.max_pool1d(X4, 2**63, padding="same"),
    lambda: ndpool.max_pool1d(X4, 2, stride=1, dilation=2**63, padding="same"),
    lambda: ndpool.avg_pool1d(X4, np.uint64(2**63), ceil_mode=True),
    lambda: ndpool.adaptive_max_pool1d(X4, 2**63),
    lambda: ndpool.avg_pool1d(X4, 2, divisor_override=10**400),
    lambda: ndpool.lp_pool1d(X4, 10**400, 2),
], ids=["stride", "kernel_same", "dilation_same", "kernel_uint64", "adaptive_output_size",
        "divisor_override", "norm_type"])
def test_regression_overflow_error(call):
    with pytest.raises(ValueError):
        call()
