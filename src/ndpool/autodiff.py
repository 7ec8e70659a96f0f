"""Gradients: ``vjp(op, x, ...)`` runs any ndpool op and returns its pullback.

An op differentiable in more than ``x`` names its inputs in ``op._ndpool_wrt`` (``x``
first, e.g. ``("x", "p")``); its implementation's pullback then returns a dict with a
gradient for each of those names, and ``vjp(..., wrt=...)`` picks the ones asked for.
Every other op's pullback returns ``dx`` alone.
"""
from __future__ import annotations

import numpy as np

from ._errors import fail, type_fail
from .arrays import dlpack, is_dlpack


def vjp(op, x, *args, wrt="x", **kwargs):
    """Run ``op(x, *args, **kwargs)`` and return ``(y, pullback)``, ``pullback(dy) -> dx``.

    >>> import numpy as np, ndpool
    >>> x = np.array([[[1.0, 3.0, 2.0, 0.0]]])
    >>> y, pullback = ndpool.vjp(ndpool.max_pool1d, x, 2)
    >>> y, pullback(np.ones_like(y))
    (array([[[3., 2.]]]), array([[[0., 1., 1., 0.]]]))

    ``wrt`` names the input to differentiate: ``"x"`` (the default), another of the
    op's differentiable arguments, or a tuple of them, for which the pullback returns a
    tuple of gradients in ``wrt``'s order:

    >>> x = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    >>> y, pullback = ndpool.vjp(ndpool.global_gem_pool, x, p=1.0, wrt=("x", "p"))
    >>> dx, dp = pullback(np.ones_like(y))
    >>> y, dx
    (array([[1.5, 3.5]]), array([[[0.5, 0.5],
            [0.5, 0.5]]]))

    For ``max_unpool*`` the gradient is with respect to the first argument; with
    ``return_indices=True`` ``y`` is ``(output, indices)`` and ``dy`` matches ``output``.
    For ``x`` of another array library (a torch tensor, a JAX array) ``y`` and ``dx``
    come back in its type, and ``dy`` may be of any array type.
    """
    impl = getattr(op, "_ndpool_impl", None)
    if impl is None:
        raise TypeError(f"vjp: op must be an ndpool op such as ndpool.max_pool2d, got {op!r}")
    names = getattr(op, "_ndpool_wrt", None)
    chosen = _chosen(op, wrt, names or ("x",))
    bound = op._ndpool_signature.bind(x, *args, **kwargs)
    if type(x) is not np.ndarray and is_dlpack(x):   # results and gradients in x's type
        bound.apply_defaults()
        y, pullback = dlpack.call(op.__name__, impl, bound.arguments, True)
    else:
        y, pullback = impl(*bound.args, grad=True, **bound.kwargs)
    if names is None:            # the pullback gives dx alone
        if isinstance(wrt, str):
            return y, pullback
        return y, lambda dy: (pullback(dy),)
    if isinstance(wrt, str):
        return y, lambda dy: pullback(dy)[wrt]
    return y, lambda dy: _pick(pullback(dy), chosen)


def _pick(gradients: dict, names: tuple) -> tuple:
    return tuple(gradients[name] for name in names)


def _chosen(op, wrt, names) -> tuple:
    """``wrt`` as a tuple of names, each one of the op's differentiable ``names``."""
    single = isinstance(wrt, str)
    items = (wrt,) if single else wrt
    if not isinstance(items, tuple) or not items or not all(isinstance(w, str) for w in items):
        type_fail("vjp", f"wrt={wrt!r} must be an argument name or a non-empty tuple of "
                  f"names, such as 'x' or ('x', {names[-1]!r})")
    listed = ", ".join(map(repr, names))
    name = getattr(op, "__name__", repr(op))
    for item in items:
        if item not in names:
            fail("vjp", f"wrt={item!r} is not one of {listed} for {name}")
    if len(set(items)) != len(items):
        fail("vjp", f"wrt={wrt!r} names an argument twice")
    return items
