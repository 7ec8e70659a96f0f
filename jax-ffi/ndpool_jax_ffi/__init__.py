"""The XLA FFI handler through which ``ndpool.jax`` calls ndpool's compiled core.

Built against jaxlib's headers, so it is an extension of its own: install it from an
ndpool checkout with ``pip install ./jax-ffi``. ``ndpool.jax`` registers the handler.
"""
from ._ffi import handler

__all__ = ["handler"]
