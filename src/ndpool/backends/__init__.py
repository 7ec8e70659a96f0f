"""Backends compute what the ops layer has decided: the compiled core, or the NumPy oracle.

``use_backend("reference")`` picks one for a block of code (per thread and per asyncio
task); by default the compiled core is used when it provides the ops, else the reference.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib

BACKENDS = ("compiled", "reference")
_chosen = contextvars.ContextVar("ndpool_backend", default=None)


@functools.lru_cache(maxsize=None)
def default_backend() -> str:
    """``"compiled"`` when the core provides the ops, else ``"reference"``."""
    try:
        compiled = _load("compiled")
    except ImportError:
        return "reference"
    return "compiled" if getattr(compiled, "available", False) else "reference"


@functools.lru_cache(maxsize=None)
def _load(name: str):
    return importlib.import_module(f"{__name__}.{name}")


def current():
    """The backend module in force here."""
    return _load(_chosen.get() or default_backend())


def chosen():
    """The name ``use_backend`` put in force here, or None for the default."""
    return _chosen.get()


@contextlib.contextmanager
def use_backend(name: str):
    """Compute with backend ``name`` ("compiled" or "reference") inside the block.

    >>> import numpy as np, ndpool
    >>> with ndpool.use_backend("reference"):
    ...     ndpool.max_pool1d(np.array([[[1.0, 3.0, 2.0, 0.0]]]), 2)
    array([[[3., 2.]]])
    """
    if name not in BACKENDS:
        raise ValueError(f"use_backend: name={name!r} is not one of {BACKENDS}")
    if name == "compiled" and default_backend() != "compiled":
        raise RuntimeError("use_backend: the compiled core is not available in this build")
    token = _chosen.set(name)
    try:
        yield _load(name)
    finally:
        _chosen.reset(token)
