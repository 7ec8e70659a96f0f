"""Gradients: ``vjp(op, x, ...)`` runs any ndpool op and returns its pullback."""
from __future__ import annotations

import numpy as np

from .arrays import dlpack, is_dlpack


def vjp(op, x, *args, **kwargs):
    """Run ``op(x, *args, **kwargs)`` and return ``(y, pullback)``, ``pullback(dy) -> dx``.

    >>> import numpy as np, ndpool
    >>> x = np.array([[[1.0, 3.0, 2.0, 0.0]]])
    >>> y, pullback = ndpool.vjp(ndpool.max_pool1d, x, 2)
    >>> y, pullback(np.ones_like(y))
    (array([[[3., 2.]]]), array([[[0., 1., 1., 0.]]]))

    For ``max_unpool*`` the gradient is with respect to the first argument; with
    ``return_indices=True`` ``y`` is ``(output, indices)`` and ``dy`` matches ``output``.
    For ``x`` of another array library (a torch tensor, a JAX array) ``y`` and ``dx``
    come back in its type, and ``dy`` may be of any array type.
    """
    impl = getattr(op, "_ndpool_impl", None)
    if impl is None:
        raise TypeError(f"vjp: op must be an ndpool op such as ndpool.max_pool2d, got {op!r}")
    bound = op._ndpool_signature.bind(x, *args, **kwargs)
    if type(x) is not np.ndarray and is_dlpack(x):
        bound.apply_defaults()
        return dlpack.call(op.__name__, impl, bound.arguments, True)
    return impl(*bound.args, grad=True, **bound.kwargs)
