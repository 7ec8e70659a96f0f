"""Edge adapters for array types other than NumPy's; each is imported only when an array
of its type arrives, so ndpool itself needs none of them."""
from __future__ import annotations

import sys


def is_dask(x) -> bool:
    """Whether ``x`` is a Dask array (true only once the caller has imported dask)."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(x, module.Array)


def is_xarray(x) -> bool:
    """Whether ``x`` is an xarray DataArray (true only once the caller imported xarray)."""
    module = sys.modules.get("xarray")
    return module is not None and isinstance(x, module.DataArray)


def lazy():
    """The Dask adapter, arrays/dask.py (imports dask)."""
    from . import dask as adapter
    return adapter
