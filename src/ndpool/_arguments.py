"""Argument checking shared by every op: arrays, dtypes, integer tuples, flags."""
from __future__ import annotations

import numbers
from typing import Tuple

import numpy as np

from ._errors import fail, type_fail
from .arrays import is_dask

FLOAT_TYPES = (np.float16, np.float32, np.float64)
#: the largest size, stride, padding or dilation accepted (window arithmetic stays in int64)
MAX_SIZE = 2**31 - 1
INT_TYPES = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)


def as_input(op: str, x, *, integers: bool) -> np.ndarray:
    """``x`` as an ndarray of a supported dtype; never copied when it already is one.
    A Dask array stays one (lazy: only its dtype is read)."""
    if isinstance(x, (str, bytes)):
        type_fail(op, f"x must be an array, got {type(x).__name__}")
    try:
        array = x if is_dask(x) else np.asarray(x)
    except Exception as error:  # ragged lists and other things NumPy refuses
        type_fail(op, f"x could not be read as an array ({error})")
    dtype = array.dtype
    if dtype.type in FLOAT_TYPES or (integers and dtype.type in INT_TYPES):
        if not dtype.isnative:  # big-endian data: computed (and returned) in native order
            array = array.astype(dtype.newbyteorder("="))
        return array
    allowed = "float16, float32 or float64"
    if integers:
        allowed += ", or an integer type"
    hint = "convert with x.astype(np.float32)" if dtype.kind in "iub" else None
    type_fail(op, f"x has dtype {dtype}, which is not supported; use {allowed}", hint)


def is_int(value) -> bool:
    if type(value) is int:  # the common case, without the ABC check's cost
        return True
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def int_tuple(op: str, name: str, value, rank: int, minimum: int = 1) -> Tuple[int, ...]:
    """An int, a 1-tuple (PyTorch broadcasts it to every dim) or a length-``rank``
    sequence of ints, each at least ``minimum``."""
    if type(value) is int and minimum <= value <= MAX_SIZE:  # the common case, quickly
        return (value,) * rank
    items = (value,) * rank if is_int(value) else value
    if not isinstance(items, (tuple, list)) or not all(is_int(v) for v in items):
        type_fail(op, f"{name}={value!r} must be an int or a tuple of {rank} ints")
    if len(items) == 1:
        items = tuple(items) * rank
    if len(items) != rank:
        fail(op, f"{name}={value!r} must have {rank} entries, one per spatial dim "
             f"(or one for all)")
    if any(v < minimum for v in items):
        fail(op, f"{name}={value!r} must be at least {minimum}")
    if any(v > MAX_SIZE for v in items):
        fail(op, f"{name}={value!r} must be at most {MAX_SIZE}")
    return tuple(int(v) for v in items)


def choice(op: str, name: str, value, options) -> str:
    if not isinstance(value, str) or value not in options:
        fail(op, f"{name}={value!r} is not one of {', '.join(map(repr, options))}")
    return value


def flag(op: str, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        type_fail(op, f"{name}={value!r} must be True or False")
    return bool(value)
