"""Layers for hand-built networks: ``forward`` caches the pullback, ``backward`` runs it.

Constructor arguments follow ``torch.nn``; a layer holds its arguments and the last
pullback, and does no arithmetic of its own.

>>> import numpy as np, ndpool
>>> pool = ndpool.nn.MaxPool2d(2)
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> pool(x)
array([[[[ 5.,  7.],
         [13., 15.]]]])
>>> pool.backward(np.ones((1, 1, 2, 2)))[0, 0]
array([[0., 0., 0., 0.],
       [0., 1., 0., 1.],
       [0., 0., 0., 0.],
       [0., 1., 0., 1.]])
"""
from __future__ import annotations

import inspect
import types

from . import functional as F
from .autodiff import vjp

__all__ = []


def bind_arguments(owner: str, table, args, kwargs) -> dict:
    """A layer's constructor arguments bound to ``table`` ((name, default) pairs, in
    order), defaults filled in; a TypeError naming ``owner`` for a wrong call. Shared by
    ndpool.nn and ndpool.torch.nn."""
    signature = inspect.Signature([
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
        for name, default in table])
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as error:
        raise TypeError(f"{owner}: {error}") from None
    bound.apply_defaults()
    return dict(bound.arguments)


class Pool:
    """Base of every layer: binds constructor arguments to the op's keyword arguments."""

    op = None
    # (name, default) in torch.nn's constructor order; private, so that hand-built
    # frameworks keep `params` free for their weights
    _signature: tuple = ()
    # the stubs make layers generic in what forward returns (an array, or with
    # return_indices an (array, indices) pair), so `MaxPool2d[...]` must work at run time
    __class_getitem__ = classmethod(types.GenericAlias)

    def __init__(self, *args, **kwargs):
        self.arguments = bind_arguments(type(self).__name__, self._signature, args, kwargs)
        self._pullback = None

    def forward(self, x, *inputs, **extra):
        """Run the op on ``x``, keeping what ``backward`` needs."""
        y, self._pullback = vjp(type(self).op, x, *inputs, **self.arguments, **extra)
        return y

    __call__ = forward

    def backward(self, dy):
        """Gradient with respect to the last ``forward``'s input."""
        if self._pullback is None:
            raise RuntimeError(f"{type(self).__name__}.backward: call forward first")
        return self._pullback(dy)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
        return f"{type(self).__name__}({args})"


_REQUIRED = inspect.Parameter.empty
_LAYOUT = ("layout", "channels_first")
_EXTREME = (("kernel_size", _REQUIRED), ("stride", None), ("padding", 0), ("dilation", 1),
            ("return_indices", False), ("ceil_mode", False), ("ties", "first"), _LAYOUT,
            ("storage_order", 0))
_AVG = (("kernel_size", _REQUIRED), ("stride", None), ("padding", 0), ("ceil_mode", False),
        ("count_include_pad", True), ("divisor_override", None), _LAYOUT, ("dilation", 1))
_LP = (("norm_type", _REQUIRED), ("kernel_size", _REQUIRED), ("stride", None),
       ("ceil_mode", False), ("padding", 0), ("dilation", 1), _LAYOUT)
_ADAPTIVE_MAX = (("output_size", _REQUIRED), ("return_indices", False), _LAYOUT)
_ADAPTIVE_AVG = (("output_size", _REQUIRED), _LAYOUT)
_FRACTIONAL = (("kernel_size", _REQUIRED), ("output_size", None), ("output_ratio", None),
               ("return_indices", False), ("samples", None), ("rng", None), _LAYOUT)
_UNPOOL = (("kernel_size", _REQUIRED), ("stride", None), ("padding", 0), _LAYOUT)
_GLOBAL = (("keepdims", False), _LAYOUT)


def _layer(name: str, op, params, doc: str):
    cls = type(name, (Pool,), {"op": staticmethod(op), "_signature": params,
                               "__doc__": doc, "__module__": __name__})
    globals()[name] = cls
    __all__.append(name)
    return cls


for _rank in (1, 2, 3):
    for _cls, _fn, _params in (("MaxPool", "max_pool", _EXTREME),
                               ("MinPool", "min_pool", _EXTREME),
                               ("AvgPool", "avg_pool", _AVG),
                               ("LPPool", "lp_pool", _LP),
                               ("AdaptiveMaxPool", "adaptive_max_pool", _ADAPTIVE_MAX),
                               ("AdaptiveAvgPool", "adaptive_avg_pool", _ADAPTIVE_AVG),
                               ("FractionalMaxPool", "fractional_max_pool", _FRACTIONAL),
                               ("MaxUnpool", "max_unpool", _UNPOOL)):
        _op = getattr(F, f"{_fn}{_rank}d", None)
        if _op is not None:
            _layer(f"{_cls}{_rank}d", _op, _params,
                   f"Layer form of :func:`ndpool.{_fn}{_rank}d`.")

_layer("GlobalMaxPool", F.global_max_pool, _GLOBAL, "Layer form of :func:`ndpool.global_max_pool`.")
_layer("GlobalAvgPool", F.global_avg_pool, _GLOBAL, "Layer form of :func:`ndpool.global_avg_pool`.")


def _unpool_forward(self, x, indices, output_size=None):
    """Unpool ``x`` at ``indices``; ``backward`` gives the gradient with respect to ``x``."""
    return Pool.forward(self, x, indices, output_size=output_size)


for _rank in (1, 2, 3):
    globals()[f"MaxUnpool{_rank}d"].forward = _unpool_forward
    globals()[f"MaxUnpool{_rank}d"].__call__ = _unpool_forward


_MEDIAN = (("kernel_size", _REQUIRED), ("stride", None), ("padding", 0), ("ceil_mode", False),
           ("return_indices", False))
_ROI_POOL = (("output_size", _REQUIRED), ("spatial_scale", 1.0))
_ROI_ALIGN = (("output_size", _REQUIRED), ("spatial_scale", 1.0), ("sampling_ratio", -1),
              ("aligned", False))

for _rank in (1, 2, 3):
    _layer(f"MedianPool{_rank}d", getattr(F, f"median_pool{_rank}d"), _MEDIAN,
           f"Layer form of :func:`ndpool.median_pool{_rank}d`.")


def _roi_forward(self, x, boxes):
    """Pool the regions ``boxes`` of ``x``; ``backward`` gives the gradient with respect
    to ``x`` (boxes get none)."""
    return Pool.forward(self, x, boxes)


for _name, _fn, _params in (("RoIPool", F.roi_pool, _ROI_POOL),
                            ("RoIAlign", F.roi_align, _ROI_ALIGN)):
    _cls = _layer(_name, _fn, _params, f"Layer form of :func:`ndpool.{_fn.__name__}` "
                  f"(torchvision.ops.{_name}); ``forward(x, boxes)``.")
    _cls.forward = _cls.__call__ = _roi_forward
