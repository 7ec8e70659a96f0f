"""Layers for hand-built networks: ``forward`` caches the pullback, ``backward`` runs it.

Constructor arguments follow ``torch.nn``; a layer holds its arguments and the last
pullback, and does no arithmetic of its own. A learnable argument (GeM's ``p``) lives
in ``layer.params`` as a NumPy array, and ``backward`` puts its gradient in
``layer.grads`` under the same name.

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

import numpy as np

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
    # (name, default) in torch.nn's constructor order; private, so that `params` holds
    # only the learnable arrays a hand-built framework trains
    _signature: tuple = ()
    # the stubs make layers generic in what forward returns (an array, or with
    # return_indices an (array, indices) pair), so `MaxPool2d[...]` must work at run time
    __class_getitem__ = classmethod(types.GenericAlias)
    # constructor arguments that are learnable: kept in `params` as float64 arrays
    _learnable: tuple = ()

    def __init__(self, *args, **kwargs):
        arguments = bind_arguments(type(self).__name__, self._signature, args, kwargs)
        self.params = {name: _learnable_array(type(self).__name__, name, arguments.pop(name))
                       for name in self._learnable}
        self.grads = {}
        self.arguments = arguments
        self.training = bool(arguments.get("training", True))
        self._pullback = None

    def forward(self, x, *inputs, **extra):
        """Run the op on ``x``, keeping what ``backward`` needs."""
        if not self._learnable:
            y, self._pullback = vjp(type(self).op, x, *inputs, **self.arguments, **extra)
            return y
        y, pullback = vjp(type(self).op, x, *inputs, **self.arguments, **self.params,
                          **extra, wrt=("x",) + self._learnable)
        self._pullback = lambda dy: self._keep_grads(pullback(dy))
        return y

    __call__ = forward

    def _keep_grads(self, gradients):
        """``dx``, with the learnable arguments' gradients put in ``grads``."""
        for name, gradient in zip(self._learnable, gradients[1:]):
            param = self.params[name]
            self.grads[name] = np.asarray(gradient, param.dtype).reshape(param.shape)
        return gradients[0]

    def backward(self, dy):
        """Gradient with respect to the last ``forward``'s input (and, for a layer with
        ``params``, theirs in ``grads``)."""
        if self._pullback is None:
            raise RuntimeError(f"{type(self).__name__}.backward: call forward first")
        return self._pullback(dy)

    def train(self, mode=True):
        """Training mode (``mode=False``: evaluation); returns the layer, as torch's.
        Only a layer whose op takes ``training`` (stochastic pooling) computes
        differently."""
        self.training = bool(mode)
        if "training" in self.arguments:
            self.arguments["training"] = self.training
        return self

    def eval(self):
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def __repr__(self) -> str:
        values = {**self.arguments, **self.params}
        args = ", ".join(f"{name}={values[name]!r}" for name, _ in self._signature)
        return f"{type(self).__name__}({args})"


def _learnable_array(owner: str, name: str, value) -> np.ndarray:
    """A learnable argument as the float64 array (at least 1-D) a layer keeps and trains."""
    try:
        return np.array(value, dtype=np.float64, ndmin=1)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: {name}={value!r} must be a number or an array of "
                        f"numbers") from None


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


def _layer(name: str, op, params, doc: str, base=None, **attributes):
    cls = type(name, (base or Pool,), {"op": staticmethod(op), "_signature": params,
                                       "__doc__": doc, "__module__": __name__, **attributes})
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


# ---------------------------------------------------------------------- variants
class _Stochastic(Pool):
    """Stochastic pooling: the layer makes its generator once, so that each forward
    draws fresh cells (a seed passed to the op itself draws the same cells each call);
    ``train()`` / ``eval()`` switch between drawing and the weighted mean."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.arguments["rng"] = np.random.default_rng(self.arguments["rng"])


_STOCHASTIC = (("kernel_size", _REQUIRED), ("stride", None), ("training", True),
               ("rng", None))
_BLUR = (("filter_size", 3), ("stride", 2), ("padding_mode", "reflect"))
_MAX_BLUR = (("kernel_size", 2),) + _BLUR
_GEM = (("p", 3.0), ("eps", 1e-6), ("keepdims", False))
_PYRAMID = (("levels", (1, 2, 4)), ("mode", "max"))

for _rank in (2, 3):
    _layer(f"StochasticPool{_rank}d", getattr(F, f"stochastic_pool{_rank}d"), _STOCHASTIC,
           f"Layer form of :func:`ndpool.stochastic_pool{_rank}d`; ``eval()`` for the "
           "weighted mean.", _Stochastic)
for _rank in (1, 2, 3):
    _layer(f"BlurPool{_rank}d", getattr(F, f"blur_pool{_rank}d"), _BLUR,
           f"Layer form of :func:`ndpool.blur_pool{_rank}d`.")
_layer("MaxBlurPool2d", F.max_blur_pool2d, _MAX_BLUR,
       "Layer form of :func:`ndpool.max_blur_pool2d`.")
_layer("GlobalGeMPool", F.global_gem_pool, _GEM,
       "Layer form of :func:`ndpool.global_gem_pool` with a learnable ``p`` "
       "(``params['p']``, shape (1,) or (C,); its gradient in ``grads['p']``).",
       _learnable=("p",))
_layer("SpatialPyramidPool", F.spatial_pyramid_pool, _PYRAMID,
       "Layer form of :func:`ndpool.spatial_pyramid_pool`.")
