"""The public functional ops, one per rank, each made from one N-d implementation.

Names, argument order and numbers follow ``torch.nn.functional``. Every op also
carries the implementation used by ``ndpool.vjp``.
"""
from __future__ import annotations

import functools
import inspect

import numpy as np

from ..arrays import dlpack, is_dlpack
from . import _ops, _variants

__all__ = []
__test__ = {}   # doctest collects the generated ops from here


def _public(name: str, impl, template, example: str, wrt=None):
    """Make public op ``name`` with ``template``'s signature, running ``impl``.

    The op is compiled from its signature's source (as ``dataclasses`` does), so a call
    binds its arguments natively, with Python's own error messages for wrong ones, and
    costs no ``inspect`` machinery per call. ``wrt`` names the op's differentiable
    arguments (``x`` first) when there are more than ``x``; the op then carries them as
    ``_ndpool_wrt`` and ``impl``'s pullback returns a dict of gradients, one per name
    (``ndpool.vjp`` reads both). An ``x`` of another array library (a torch
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
    if wrt is not None:
        op._ndpool_wrt = tuple(wrt)
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


# ------------------------------------------------------- median and region pooling
from . import _regions  # noqa: E402


def _median_template(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                     return_indices=False):
    """{name}: {example}

    Each window's value is the median of its cells inside the input (padded cells never
    count), the lower of the two middle values for an even count, as ``torch.median``.
    ``return_indices=True`` also returns the flat per-plane int64 index of the cell
    holding it; among equal cells, the one a stable sort (ties in scan order) puts at
    the median's place, as ``torch.median`` chooses (a NaN wins its window: the first
    NaN). The gradient goes to that cell. Arguments and padding forms as for max
    pooling, without dilation.
    """


def _median_example(rank: int) -> str:
    name = f"median_pool{rank}d"
    shape = (1, 1) + (4,) * rank
    out = (1, 1) + (2,) * rank
    return (f"median pooling over sliding windows.\n\n    >>> import numpy as np, ndpool\n"
            f"    >>> x = np.arange({4 ** rank}.0).reshape({shape})\n"
            f"    >>> ndpool.{name}(x, 2).shape\n    {out}")


for _rank in (1, 2, 3):
    _name = f"median_pool{_rank}d"
    _public(_name, functools.partial(_regions.median_pool, _name, _rank), _median_template,
            _median_example(_rank))


def _roi_pool_template(x, boxes, output_size, spatial_scale=1.0):
    """roi_pool: RoIPool (Girshick 2015, Fast R-CNN), as ``torchvision.ops.roi_pool``.

    >>> import numpy as np, ndpool
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> ndpool.roi_pool(x, np.array([[0, 0, 0, 3, 3]]), 2)
    array([[[[ 5.,  7.],
             [13., 15.]]]])

    ``x`` is (N, C, H, W); ``boxes`` a (K, 5) array of (image index, x1, y1, x2, y2) or a
    list of (Ki, 4) arrays of (x1, y1, x2, y2), one per image, in input coordinates
    that ``spatial_scale`` maps to ``x``'s cells. Each box's corners are rounded to cells
    (halves away from zero), it spans at least one cell, and bin ``(ph, pw)`` of the
    ``output_size`` bins is the max of cells ``floor(ph * bin)`` to ``ceil((ph+1) * bin)``
    from the box's corner, clipped to the map; an empty bin is 0. The output is
    (K, C, *output_size); the gradient goes to each bin's first maximum.
    """


def _roi_align_template(x, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1,
                        aligned=False):
    """roi_align: RoIAlign (He et al. 2017, Mask R-CNN), as ``torchvision.ops.roi_align``.

    >>> import numpy as np, ndpool
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> ndpool.roi_align(x, [np.array([[0.0, 0.0, 2.0, 2.0]])], 2)
    array([[[[2.5, 3.5],
             [6.5, 7.5]]]])

    Boxes as for ``roi_pool``, not rounded: each of the ``output_size`` bins is the mean
    of bilinear samples on a ``sampling_ratio`` x ``sampling_ratio`` grid (``<= 0``:
    ``ceil(box size / output size)`` per dim). ``aligned=True`` shifts the box by half a
    cell (pixel centres at integer + 0.5); without it a box is at least 1x1. A sample
    more than one cell outside the map counts 0; one within it reads the clamped edge.
    The output is (K, C, *output_size); gradients go to ``x`` (boxes get none).
    """


_public("roi_pool", _regions.roi_pool, _roi_pool_template, "")
_public("roi_align", _regions.roi_align, _roi_align_template, "")


# --------------------------------------------- softmax-weighted pooling (SoftPool, LIP)
def _soft_template(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                   layout="channels_first"):
    """{name}: {example}

    SoftPool (Stergiou et al. 2021): each window's ``sum(exp(x)·x) / sum(exp(x))`` over
    its in-bounds cells, computed stably (the exponents shifted by the window's max);
    padded cells take no weight. ``kernel_size``, ``stride`` (default:
    ``kernel_size``), ``padding`` and ``ceil_mode`` take the forms of max pooling.
    """


def _attention_template(x, logits, kernel_size, stride=None, padding=0,
                        layout="channels_first"):
    """{name}: {example}

    Attention pooling (LIP, Gao et al. 2019): each window's cells weighted by the softmax
    of ``logits`` (an array of x's shape, typically a learned layer's output) over the
    window's in-bounds cells, ``sum(softmax(logits)·x)``; padded cells take no weight.
    ``attention_pool(x, x, ...)`` is SoftPool. ``ndpool.vjp(op, x, logits, ...,
    wrt=("x", "logits"))`` gives both gradients.
    """


def _soft_example(name: str, rank: int) -> str:
    if rank == 1:   # one value to see: the window [0, 1] gives (0·e^0 + 1·e^1) / (e^0 + e^1)
        return ("softmax-weighted pooling (SoftPool).\n\n    >>> import numpy as np, ndpool\n"
                "    >>> ndpool.soft_pool1d(np.array([[[0.0, 1.0, 2.0, 2.0]]]), 2)\n"
                "    array([[[0.73105858, 2.        ]]])")
    shape = (1, 1) + (4,) * rank
    out = (1, 1) + (2,) * rank
    return (f"softmax-weighted pooling (SoftPool).\n\n    >>> import numpy as np, ndpool\n"
            f"    >>> x = np.arange({4 ** rank}.0).reshape({shape}) / 8\n"
            f"    >>> ndpool.{name}(x, 2).shape\n    {out}")


for _rank in (1, 2, 3):
    _name = f"soft_pool{_rank}d"
    _public(_name, functools.partial(_ops.soft_pool, _name, _rank), _soft_template,
            _soft_example(_name, _rank))


def _attention_example(name: str, rank: int) -> str:
    shape = (1, 1) + (4,) * rank
    out = (1, 1) + (2,) * rank
    return (f"attention (LIP) pooling: softmax(logits)-weighted window sums.\n\n"
            f"    >>> import numpy as np, ndpool\n"
            f"    >>> x = np.arange({4 ** rank}.0).reshape({shape})\n"
            f"    >>> y = ndpool.{name}(x, np.zeros_like(x), 2)   # equal logits: the mean\n"
            f"    >>> bool(np.allclose(y, ndpool.avg_pool{rank}d(x, 2))), y.shape\n"
            f"    (True, {out})")


for _rank in (1, 2, 3):
    _name = f"attention_pool{_rank}d"
    _public(_name, functools.partial(_ops.attention_pool, _name, _rank), _attention_template,
            _attention_example(_name, _rank))._ndpool_wrt = ("x", "logits")
# ------------------------------------------------- variants beyond the frameworks
def _stochastic_template(x, kernel_size, stride=None, training=True, rng=None):
    """{name}: {example}

    Zeiler & Fergus 2013, for non-negative ``x`` (negative input is a ValueError). With
    ``training`` each window gives one of its cells, drawn with probability proportional
    to its value (a window of zeros gives 0), and the backward pass sends ``dy`` to that
    cell; the draw is ``u = numpy.random.default_rng(rng).random(y.shape)``, taking the
    first cell, in row-major window order, whose running sum exceeds ``u`` times the
    window's sum, so the same ``rng`` draws the same cells in a call and in its ``vjp``.
    In evaluation (``training=False``) each window gives the probability-weighted mean
    ``sum(x**2) / sum(x)`` (0 for a window of zeros, whose gradient is 0). No padding;
    ``stride`` defaults to ``kernel_size``.
    """


def _stochastic_example(name: str, rank: int) -> str:
    shape = (1, 1) + (4,) * rank
    out = (1, 1) + (2,) * rank
    return ("stochastic pooling (Zeiler & Fergus 2013).\n\n"
            "    >>> import numpy as np, ndpool\n"
            f"    >>> x = np.arange({4 ** rank}.0).reshape({shape})\n"
            f"    >>> ndpool.{name}(x, 2, rng=0).shape\n    {out}\n"
            f"    >>> y = ndpool.{name}(np.ones({shape}), 2, training=False)\n"
            "    >>> bool((y == 1).all())\n    True")


for _rank in (2, 3):
    _name = f"stochastic_pool{_rank}d"
    _public(_name, functools.partial(_variants.stochastic_pool, _name, _rank),
            _stochastic_template, _stochastic_example(_name, _rank))


def _blur_template(x, filter_size=3, stride=2, padding_mode="reflect"):
    """{name}: {example}

    Zhang 2019, anti-aliased downsampling: each channel is blurred by the normalised
    binomial filter of ``filter_size`` taps (1 to 7; 3 is ``[1, 2, 1] / 4`` per dim) and
    subsampled by ``stride``. Padding adds ``(filter_size - 1) // 2`` cells before and
    ``filter_size // 2`` after in every dim, filled per ``padding_mode``: ``"reflect"``
    (antialiased-cnns), ``"zeros"`` (kornia), ``"replicate"`` or ``"circular"``; the
    output has ``ceil(n / stride)`` cells per dim.
    """


def _blur_example(name: str, rank: int) -> str:
    shape = (1, 1) + (6,) * rank
    out = (1, 1) + (3,) * rank
    return ("anti-aliased (blur) pooling (Zhang 2019).\n\n"
            "    >>> import numpy as np, ndpool\n"
            f"    >>> x = np.ones({shape})\n"
            f"    >>> y = ndpool.{name}(x, 3, stride=2)\n"
            "    >>> y.shape, bool(np.allclose(y, 1))\n"
            f"    ({out}, True)")


for _rank in (1, 2, 3):
    _name = f"blur_pool{_rank}d"
    _public(_name, functools.partial(_variants.blur_pool, _name, _rank), _blur_template,
            _blur_example(_name, _rank))


def _max_blur_template(x, kernel_size=2, filter_size=3, stride=2, padding_mode="reflect"):
    """max_blur_pool2d: max pooling, then anti-aliased subsampling (Zhang 2019).

    >>> import numpy as np, ndpool
    >>> x = np.arange(64.0).reshape(1, 1, 8, 8)
    >>> ndpool.max_blur_pool2d(x, 2).shape
    (1, 1, 4, 4)

    ``max_pool2d(x, kernel_size, stride=1)`` (no padding) followed by
    ``blur_pool2d(., filter_size, stride, padding_mode)``: the max is taken densely and
    blurred before it is subsampled, so shifting the input shifts the output smoothly.
    """


_public("max_blur_pool2d", functools.partial(_variants.max_blur_pool, "max_blur_pool2d"),
        _max_blur_template, "")


def _gem_template(x, p=3.0, eps=1e-6, keepdims=False):
    """global_gem_pool: generalized-mean (GeM) pooling over all spatial dims
    (Radenović, Tolias & Chum 2018).

    >>> import numpy as np, ndpool
    >>> x = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    >>> ndpool.global_gem_pool(x, p=1.0)          # p = 1: the mean
    array([[2.5]])
    >>> float(ndpool.global_gem_pool(x, p=200.0)[0, 0].round(2))   # large p: near the max
    3.97

    ``mean(max(x, eps) ** p) ** (1 / p)`` per (n, c) plane of ``(N, C, *spatial)``:
    shape ``(N, C)``, or ``(N, C, 1, ..., 1)`` with ``keepdims``. ``p`` is a positive
    number, or an array of shape ``(1,)`` or ``(C,)`` (one per channel). Differentiable
    in ``x`` and ``p``: ``ndpool.vjp(ndpool.global_gem_pool, x, p=p, wrt=("x", "p"))``;
    ``dp`` has ``p``'s shape, and ``dx`` is 0 where ``x < eps`` (the clamp's rule).
    """


_public("global_gem_pool", _variants.global_gem_pool, _gem_template, "", wrt=("x", "p"))


def _pyramid_template(x, levels=(1, 2, 4), mode="max"):
    """spatial_pyramid_pool: spatial pyramid pooling (He, Zhang, Ren & Sun 2014).

    >>> import numpy as np, ndpool
    >>> x = np.random.default_rng(0).random((2, 8, 13, 17))
    >>> ndpool.spatial_pyramid_pool(x).shape          # 8 * (1 + 4 + 16) from any H, W
    (2, 168)

    For each level ``n`` the ``adaptive_{{mode}}_pool`` of ``x`` to ``n x n`` (``n x n x n``
    for 3-D input ``(N, C, D, H, W)``), flattened from ``(C, n, n)`` and concatenated in
    level order: shape ``(N, C * sum(n ** rank))``. ``mode`` is ``"max"`` or ``"avg"``.
    """


_public("spatial_pyramid_pool", _variants.spatial_pyramid_pool, _pyramid_template, "")
