"""Thread count of the compiled core (``NDPOOL_NUM_THREADS`` sets the default)."""
from __future__ import annotations

import numbers

from . import _core


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in the compiled core from now on.

    >>> import ndpool
    >>> before = ndpool.get_num_threads()
    >>> ndpool.set_num_threads(1); ndpool.get_num_threads()
    1
    >>> ndpool.set_num_threads(before)
    """
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads: n={n!r} must be an int of at least 1")
    _core.set_num_threads(int(n))


def get_num_threads() -> int:
    """The number of threads the compiled core uses."""
    return int(_core.get_num_threads())
