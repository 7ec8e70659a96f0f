"""Edge adapters for array types other than NumPy's; each library is imported only when
an array of its type arrives, so ndpool itself needs none of them (dlpack.py, for torch
tensors, JAX arrays and any other ``__dlpack__`` array, needs none at all)."""
from __future__ import annotations

import sys

import numpy as np


def is_dask(x) -> bool:
    """Whether ``x`` is a Dask array (true only once the caller has imported dask)."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(x, module.Array)


def is_xarray(x) -> bool:
    """Whether ``x`` is an xarray DataArray (true only once the caller imported xarray)."""
    module = sys.modules.get("xarray")
    return module is not None and isinstance(x, module.DataArray)


def is_dlpack(x) -> bool:
    """Whether ``x`` is another library's array that DLPack can hand over to NumPy (a
    torch tensor, a JAX array, ...); NumPy arrays and their subclasses are not."""
    return not isinstance(x, np.ndarray) and hasattr(type(x), "__dlpack__")


def lazy():
    """The Dask adapter, arrays/dask.py (imports dask)."""
    from . import dask as adapter
    return adapter
