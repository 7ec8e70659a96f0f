"""The public functional ops, one per rank, each made from one N-d implementation.

Names, argument order and numbers follow ``torch.nn.functional``. Every op also
carries the implementation used by ``ndpool.vjp``.
"""
from __future__ import annotations

import functools
import inspect

import numpy as np

from ..arrays import dlpack, is_dlpack
from . import _ops

__all__ = []
__test__ = {}   # doctest collects the generated ops from here


def _public(name: str, impl, template, example: str):
    """Make public op ``name`` with ``template``'s signature, running ``impl``.

    The op is compiled from its signature's source (as ``dataclasses`` does), so a call
    binds its arguments natively, with Python's own error messages for wrong ones, and
    costs no ``inspect`` machinery per call. An ``x`` of another array library (a torch
    tensor, a JAX array: anything with ``__dlpack__``) is computed on as a NumPy view
    and the results are returned in its type (arrays/dlpack.py).
    """
    signature = inspect.signature(template)
    names = ", ".join(f"{p}={p}" for p in signature.parameters)
    entries = ", ".join(f"{p!r}: {p}" for p in signature.parameters)
    # a NumPy array pays one type check; another library's array goes through DLPack
    source = (f"def {name}{signature}:\n"
              f"    if type(x) is not _ndarray and _is_dlpack(x):\n"
              f"        return _dlpack.call({name!r}, _impl, {{{entries}}}, False)[0]\n"
              f"    return _impl({names})[0]\n")
    namespace = {"_impl": impl, "_ndarray": np.ndarray, "_is_dlpack": is_dlpack,
                 "_dlpack": dlpack}
    exec(source, namespace)  # noqa: S102  the source is made above from our own templates
    op = namespace[name]
    op.__name__ = op.__qualname__ = name
    op.__module__ = __name__
    op.__signature__ = signature
    op.__doc__ = template.__doc__.format(name=name, example=example)
    op._ndpool_impl = impl          # (args...) -> (result, pullback) with grad=
    op._ndpool_signature = signature
    globals()[name] = op
    __all__.append(name)
    __test__[name] = op
    return op


# ------------------------------------------------------------- templates (signature + doc)
def _extreme_template(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                      return_indices=False, ties="first", layout="channels_first",
                      storage_order=0):
    """{name}: {example}

    ``kernel_size``, ``stride`` (default, or ``()``: ``kernel_size``) and ``dilation``
    are ints, one int per spatial dim, or a 1-tuple for all. ``padding`` is PyTorch's
    (the same on both sides, at most half the kernel), (before, after) pairs per dim
    (TensorFlow's and ONNX's; ``rank + 2`` pairs in TensorFlow's form), ``2 * rank``
    ints in ``torch.nn.functional.pad``'s order, or a word: ``"valid"``, ``"same"``,
    ``"same_lower"`` (any case). ``return_indices=True`` also returns flat per-plane
    int64 indices of the winners (a NaN wins its window), column-major with
    ``storage_order=1`` (ONNX's). ``ties`` picks how the backward pass treats equal
    extremes: ``"first"`` (PyTorch) or ``"split"`` (shared equally).
    """


def _avg_template(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                  count_include_pad=True, divisor_override=None, layout="channels_first",
                  dilation=1):
    """{name}: {example}

    Arguments and padding forms as for max pooling; ``dilation`` spaces the taps (ONNX's
    AveragePool). The divisor follows PyTorch: explicit padding counts when
    ``count_include_pad``, the ``ceil_mode`` overhang never does, ``divisor_override``
    wins. With a padding word padded cells never count (TensorFlow).
    """


def _lp_template(x, norm_type, kernel_size, stride=None, ceil_mode=False, padding=0,
                 dilation=1, layout="channels_first"):
    """{name}: {example}

    ``(sum of x**p over the window) ** (1/p)``, computed as PyTorch composes it; padded
    cells are zeros. ``padding`` and ``dilation`` (ONNX's LpPool) take the forms of max
    pooling.
    """


def _adaptive_max_template(x, output_size, return_indices=False, layout="channels_first"):
    """{name}: {example}

    Window ``o`` spans ``floor(o*in/out)`` to ``ceil((o+1)*in/out)`` in every dim.
    """


def _adaptive_avg_template(x, output_size, layout="channels_first"):
    """{name}: {example}

    Window ``o`` spans ``floor(o*in/out)`` to ``ceil((o+1)*in/out)`` in every dim.
    """


def _fractional_template(x, kernel_size, output_size=None, output_ratio=None,
                         return_indices=False, samples=None, rng=None,
                         layout="channels_first"):
    """{name}: {example}

    Windows of ``kernel_size`` start at PyTorch's pseudo-random interval sequence.
    ``samples`` (shape (N, C, dims), values in [0, 1)) plays PyTorch's
    ``_random_samples``; without it they are drawn from ``numpy.random.default_rng(rng)``.
    An output size of 0 gives an empty result, as in PyTorch.
    """


def _unpool_template(x, indices, kernel_size, stride=None, padding=0, output_size=None,
                     layout="channels_first"):
    """{name}: {example}

    Zeros of the pooled-from size with ``x`` written at the flat per-plane ``indices``
    returned by max pooling; ``output_size`` resolves the size when it is ambiguous.
    """


_DOC = {
    "max_pool": ("max pooling over sliding windows.", "ndpool.{name}(x, 2)"),
    "min_pool": ("min pooling over sliding windows.", "ndpool.{name}(x, 2)"),
    "avg_pool": ("average pooling over sliding windows.", "ndpool.{name}(x, 2)"),
    "lp_pool": ("power-average (Lp) pooling.", "ndpool.{name}(x, 2, 2)"),
    "adaptive_max_pool": ("max pooling to a given output size.", "ndpool.{name}(x, 2)"),
    "adaptive_avg_pool": ("average pooling to a given output size.", "ndpool.{name}(x, 2)"),
    "fractional_max_pool": ("fractional max pooling (Graham 2014).",
                            "ndpool.{name}(x, 2, output_size=2, rng=0)"),
}


def _example(family: str, name: str, rank: int) -> str:
    title, call = _DOC[family]
    shape = (1, 1) + (4,) * rank
    out = (1, 1) + (2,) * rank
    return (f"{title}\n\n    >>> import numpy as np, ndpool\n"
            f"    >>> x = np.arange({4 ** rank}.0).reshape({shape})\n"
            f"    >>> {call.format(name=name)}.shape\n    {out}")


_FAMILIES = (
    ("max_pool", functools.partial(_ops.extreme_pool, "max"), _extreme_template, (1, 2, 3)),
    ("min_pool", functools.partial(_ops.extreme_pool, "min"), _extreme_template, (1, 2, 3)),
    ("avg_pool", _ops.avg_pool, _avg_template, (1, 2, 3)),
    ("lp_pool", _ops.lp_pool, _lp_template, (1, 2, 3)),
    ("adaptive_max_pool", _ops.adaptive_max_pool, _adaptive_max_template, (1, 2, 3)),
    ("adaptive_avg_pool", _ops.adaptive_avg_pool, _adaptive_avg_template, (1, 2, 3)),
    ("fractional_max_pool", _ops.fractional_max_pool, _fractional_template, (2, 3)),
)

for _family, _impl, _template, _ranks in _FAMILIES:
    for _rank in _ranks:
        _name = f"{_family}{_rank}d"
        _public(_name, functools.partial(_impl, _name, _rank), _template,
                _example(_family, _name, _rank))


def _unpool_example(rank: int) -> str:
    name = f"max_unpool{rank}d"
    shape = (1, 1) + (4,) * rank
    return (f"the inverse of max pooling.\n\n    >>> import numpy as np, ndpool\n"
            f"    >>> x = np.arange({4 ** rank}.0).reshape({shape})\n"
            f"    >>> y, idx = ndpool.max_pool{rank}d(x, 2, return_indices=True)\n"
            f"    >>> z = ndpool.{name}(y, idx, 2)\n"
            f"    >>> bool((z == np.where(z > 0, x, 0)).all()), z.shape\n"
            f"    (True, {shape})")


for _rank in (1, 2, 3):
    _name = f"max_unpool{_rank}d"
    _public(_name, functools.partial(_ops.max_unpool, _name, _rank), _unpool_template,
            _unpool_example(_rank))


def _global_max_template(x, keepdims=False, layout="channels_first"):
    """global_max_pool: the max over all spatial dims of ``(N, C, *spatial)``, or of
    ``(N, *spatial, C)`` with ``layout="channels_last"`` (Keras' default).

    >>> import numpy as np, ndpool
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)
    >>> ndpool.global_max_pool(x)
    array([[3., 7.]])
    >>> ndpool.global_max_pool(x, keepdims=True).shape
    (1, 2, 1, 1)
    """


def _global_avg_template(x, keepdims=False, layout="channels_first"):
    """global_avg_pool: the mean over all spatial dims of ``(N, C, *spatial)``, or of
    ``(N, *spatial, C)`` with ``layout="channels_last"`` (Keras' default).

    >>> import numpy as np, ndpool
    >>> ndpool.global_avg_pool(np.arange(8.0).reshape(1, 2, 4))
    array([[1.5, 5.5]])
    """


_public("global_max_pool", _ops.global_max_pool, _global_max_template, "")
_public("global_avg_pool", _ops.global_avg_pool, _global_avg_template, "")


def _pool_template(x, op, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                   *, axes=None):
    """pool: sliding-window ``op`` over any ``axes`` of an array of any rank.

    >>> import numpy as np, ndpool
    >>> x = np.arange(16.0).reshape(4, 4)
    >>> ndpool.pool(x, "max", 2)
    array([[ 5.,  7.],
           [13., 15.]])
    >>> field = np.random.default_rng(0).random((2, 4, 6, 6, 6))   # (N, T, D, H, W)
    >>> ndpool.pool(field, "avg", 2, axes=(1, 2, 3, 4)).shape
    (2, 2, 3, 3, 3)
    >>> image = np.random.default_rng(1).random((1, 3, 8, 8))
    >>> bool((ndpool.pool(image, "max", 3, 2, 1, axes=(-2, -1))
    ...       == ndpool.max_pool2d(image, 3, 2, 1)).all())
    True

    ``op`` is ``"max"``, ``"min"``, ``"avg"`` or ``"sum"``; ``axes`` is None (every axis),
    an int or a tuple of ints, and ``kernel_size``, ``stride`` (default: ``kernel_size``),
    ``padding`` (ints, ``"valid"`` or ``"same"``) and ``dilation`` give one int or one
    per axis. The rules are the named ops': ``pool(x, "max", k, axes=(-2, -1))`` is
    ``max_pool2d(x, k)``, ``"avg"`` is ``avg_pool*``'s divisor with its defaults, and
    ``"sum"`` is the window sum. Pooling the channel axis gives TensorFlow's depthwise
    pooling. Max and min take integer input; averages and sums take floats. Works on
    Dask arrays (lazily) and with ``ndpool.vjp``.
    """


_public("pool", _ops.pool, _pool_template, "")
