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

from . import _attention
from . import functional as F
from ._arguments import as_input, is_int
from ._errors import fail, type_fail
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
_SOFT = (("kernel_size", _REQUIRED), ("stride", None), ("padding", 0), ("ceil_mode", False),
         _LAYOUT)
_ATTENTION = (("kernel_size", _REQUIRED), ("stride", None), ("padding", 0), _LAYOUT)


def _layer(name: str, op, params, doc: str, base=None):
    cls = type(name, (base or Pool,), {"op": staticmethod(op), "_signature": params,
                               "__doc__": doc, "__module__": __name__})
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
                               ("MaxUnpool", "max_unpool", _UNPOOL),
                               ("SoftPool", "soft_pool", _SOFT)):
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
class _TwoInputs(Pool):
    """A layer of an op with a second differentiable input (attention pooling's logits):
    ``forward(x, logits)``, and ``backward(dy)`` returns ``(dx, dlogits)``."""

    def forward(self, x, logits):
        """Pool ``x`` weighted by the softmax of ``logits``; keeps what ``backward`` needs."""
        op = type(self).op
        y, self._pullback = op._ndpool_impl(x, logits, **self.arguments, grad=True)
        return y

    __call__ = forward

    def backward(self, dy):
        """``(dx, dlogits)`` of the last ``forward``."""
        grads = Pool.backward(self, dy)
        return tuple(grads[name] for name in type(self).op._ndpool_wrt)


for _rank in (1, 2, 3):   # LIP (Gao et al. 2019) takes its logits from a learned layer
    _layer(f"LIPPool{_rank}d", getattr(F, f"attention_pool{_rank}d"), _ATTENTION,
           f"Layer form of :func:`ndpool.attention_pool{_rank}d` (LIP, Gao et al. 2019): "
           f"``forward(x, logits)``, ``backward(dy) -> (dx, dlogits)``.", _TwoInputs)


class AttentionPool2d:
    """CLIP's global attention pooling (Radford et al. 2021): (N, C, H, W) to
    (N, output_dim), C = ``embed_dim`` and H = W = ``spacial_dim``.

    >>> import numpy as np, ndpool
    >>> pool = ndpool.nn.AttentionPool2d(spacial_dim=4, embed_dim=8, num_heads=2,
    ...                                  output_dim=3, rng=0)
    >>> x = np.random.default_rng(1).standard_normal((2, 8, 4, 4)).astype(np.float32)
    >>> y = pool(x)
    >>> y.shape, pool.backward(np.ones_like(y)).shape, pool.grads["c_proj.weight"].shape
    ((2, 3), (2, 8, 4, 4), (3, 8))

    The H·W tokens and their mean, plus ``params["positional_embedding"]`` (shape
    (spacial_dim² + 1, embed_dim)), go through multi-head attention whose one query is
    the mean token, then the output projection. ``params`` holds CLIP's tensors under
    CLIP's names, in PyTorch's layouts (``q_proj.weight`` is (embed_dim, embed_dim),
    ``c_proj.weight`` (output_dim, embed_dim), ``y = x @ W.T + b``), initialised as CLIP
    does from ``numpy.random.default_rng(rng)`` in ``dtype``; assign arrays of the same
    shapes to load weights. ``backward(dy)`` returns dx and fills ``grads``.
    """

    _signature = (("spacial_dim", _REQUIRED), ("embed_dim", _REQUIRED),
                  ("num_heads", _REQUIRED), ("output_dim", None), ("rng", None),
                  ("dtype", "float32"))

    def __init__(self, *args, **kwargs):
        self.arguments = bind_arguments(type(self).__name__, self._signature, args, kwargs)
        owner = type(self).__name__
        spacial, embed, heads = (self.arguments[k] for k in ("spacial_dim", "embed_dim",
                                                               "num_heads"))
        out = self.arguments["output_dim"]
        for name, value in (("spacial_dim", spacial), ("embed_dim", embed),
                            ("num_heads", heads), ("output_dim", out)):
            if value is None and name == "output_dim":
                continue
            if not is_int(value) or value < 1:
                fail(owner, f"{name}={value!r} must be a positive int")
        if embed % heads:
            fail(owner, f"embed_dim={embed} must be a multiple of num_heads={heads}")
        dtype = np.dtype(self.arguments["dtype"])
        if dtype.kind != "f":
            type_fail(owner, f"dtype={self.arguments['dtype']!r} must be a float dtype")
        self.output_dim = out or embed
        self.params = _attention.initial_params(spacial, embed, self.output_dim,
                                                self.arguments["rng"], dtype)
        self.grads = {}
        self._cache = None

    def _shapes(self) -> dict:
        s, c, o = self.arguments["spacial_dim"], self.arguments["embed_dim"], self.output_dim
        shapes = {"positional_embedding": (s * s + 1, c)}
        for name, out in (("q_proj", c), ("k_proj", c), ("v_proj", c), ("c_proj", o)):
            shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (out, c), (out,)
        return shapes

    def forward(self, x):
        """Pool x of shape (N, embed_dim, spacial_dim, spacial_dim) to (N, output_dim)."""
        owner = type(self).__name__
        x = as_input(owner, x, integers=False)
        s, c = self.arguments["spacial_dim"], self.arguments["embed_dim"]
        if x.ndim != 4 or x.shape[1] != c or x.shape[2] * x.shape[3] != s * s:
            fail(owner, f"x must have shape (N, {c}, H, W) with H·W = spacial_dim² = {s * s}, "
                 f"got shape {x.shape}")
        _attention.check_params(owner, self.params, self._shapes())
        dtype = np.result_type(x.dtype, *self.params.values())
        params = {k: v.astype(dtype, copy=False) for k, v in self.params.items()}
        y, cache = _attention.forward(x.astype(dtype, copy=False), params,
                                      self.arguments["num_heads"])
        self._cache = (params, cache)
        return y

    __call__ = forward

    def backward(self, dy):
        """dx of the last ``forward``; ``grads`` gets every parameter's gradient."""
        owner = type(self).__name__
        if self._cache is None:
            raise RuntimeError(f"{owner}.backward: call forward first")
        params, cache = self._cache
        dy = np.asarray(dy)
        expect = (cache[0][0], self.output_dim)
        if dy.shape != expect:
            fail(f"{owner}.backward", f"dy has shape {dy.shape} but the output has shape {expect}")
        dx, grads = _attention.backward(dy.astype(cache[1].dtype, copy=False), params, cache)
        self.grads = {k: g.astype(self.params[k].dtype, copy=False) for k, g in grads.items()}
        return dx

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
        return f"{type(self).__name__}({args})"


__all__.append("AttentionPool2d")
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
