"""Gradients: ``vjp(op, x, ...)`` runs any ndpool op and returns its pullback."""
from __future__ import annotations


def vjp(op, x, *args, **kwargs):
    """Run ``op(x, *args, **kwargs)`` and return ``(y, pullback)``, ``pullback(dy) -> dx``.

    >>> import numpy as np, ndpool
    >>> x = np.array([[[1.0, 3.0, 2.0, 0.0]]])
    >>> y, pullback = ndpool.vjp(ndpool.max_pool1d, x, 2)
    >>> y, pullback(np.ones_like(y))
    (array([[[3., 2.]]]), array([[[0., 1., 1., 0.]]]))

    For ``max_unpool*`` the gradient is with respect to the first argument; with
    ``return_indices=True`` ``y`` is ``(output, indices)`` and ``dy`` matches ``output``.
    """
    impl = getattr(op, "_ndpool_impl", None)
    if impl is None:
        raise TypeError(f"vjp: op must be an ndpool op such as ndpool.max_pool2d, got {op!r}")
    bound = op._ndpool_signature.bind(x, *args, **kwargs)
    return impl(*bound.args, grad=True, **bound.kwargs)
