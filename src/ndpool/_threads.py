"""Thread count of the compiled core (``NDPOOL_NUM_THREADS`` sets the default), and the
count each block of a Dask array runs with."""
from __future__ import annotations

import contextlib
import contextvars
import numbers

from . import _core

#: core threads per Dask block, captured when a graph is built (see block_threads)
_per_block = contextvars.ContextVar("ndpool_block_threads", default=1)


def _checked(op: str, n) -> int:
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{op}: n={n!r} must be an int of at least 1")
    return int(n)


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in the compiled core from now on.

    >>> import ndpool
    >>> before = ndpool.get_num_threads()
    >>> ndpool.set_num_threads(1); ndpool.get_num_threads()
    1
    >>> ndpool.set_num_threads(before)
    """
    _core.set_num_threads(_checked("set_num_threads", n))


def get_num_threads() -> int:
    """The number of threads the compiled core uses for a call from this thread."""
    return int(_core.get_num_threads())


@contextlib.contextmanager
def block_threads(n: int):
    """Dask graphs built inside the block run each of their blocks on ``n`` core threads.

    The default is one: a Dask worker already runs one block per worker thread, so more
    core threads per block would oversubscribe the CPU.

    >>> import ndpool
    >>> with ndpool.block_threads(2):
    ...     ndpool.block_threads.current()
    2
    >>> ndpool.block_threads.current()
    1
    """
    token = _per_block.set(_checked("block_threads", n))
    try:
        yield
    finally:
        _per_block.reset(token)


block_threads.current = _per_block.get


@contextlib.contextmanager
def capped(n: int):
    """Core calls from this thread use at most ``n`` threads inside the block (the pool
    keeps its size for every other thread)."""
    old = _core.set_local_thread_cap(int(n))
    try:
        yield
    finally:
        _core.set_local_thread_cap(old)
