"""ndpool's ops for CPU torch tensors, registered as ``torch.library`` custom ops.

>>> import torch, ndpool.torch
>>> x = torch.arange(16.0).reshape(1, 1, 4, 4).requires_grad_()
>>> y = ndpool.torch.max_pool2d(x, 2)
>>> y  # doctest: +ELLIPSIS
tensor([[[[ 5.,  7.],
          [13., 15.]]]], grad_fn=<...>)
>>> y.sum().backward(); x.grad[0, 0]
tensor([[0., 0., 0., 0.],
        [0., 1., 0., 1.],
        [0., 0., 0., 0.],
        [0., 1., 0., 1.]])

Each public op ``name`` is three custom ops in the ``ndpool`` namespace: ``name``
(the result), ``name_with_indices`` (result and int64 indices, for ops with
``return_indices``) and ``name_backward`` (``dx`` from ``dy``, by ``ndpool.vjp``).
``max_unpool*`` take the indices, ``fractional_max_pool*`` the samples that place their
windows, as a second tensor (drawn with torch's generator when none are given).
Bridged: every op of ``ndpool`` except ``pool`` (any axes), ``coarsen`` and, not yet,
most variants beyond the frameworks (attention, stochastic, GeM, blur, pyramid and
region pooling); ``soft_pool*`` and ``median_pool*`` are bridged.
Their fake kernels take output shapes from the same geometry as the NumPy ops, so
``torch.compile`` traces them without running a pool. Tensors reach the core as NumPy
views of their memory; a channels-last tensor goes in as its (N, *spatial, C) view with
``layout="channels_last"``, and the result comes back channels-last.
"""
import ast
import functools
import inspect

import numpy as np
import torch

from .. import functional as F
from ._shapes import output_shape

__all__ = ["nn"]

NAMESPACE = "ndpool"
# (family, ranks): the ops bridged so far; each needs an output-shape rule in _shapes
_BRIDGED = (("max_pool", (1, 2, 3)), ("min_pool", (1, 2, 3)), ("avg_pool", (1, 2, 3)),
            ("lp_pool", (1, 2, 3)), ("adaptive_max_pool", (1, 2, 3)),
            ("adaptive_avg_pool", (1, 2, 3)), ("soft_pool", (1, 2, 3)),
            ("median_pool", (1, 2, 3)))
_GLOBAL = ("global_max_pool", "global_avg_pool")
_FORMATS = {4: torch.channels_last, 5: torch.channels_last_3d}


# ------------------------------------------------------------ tensors <-> arrays
def _channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` (N, C, *spatial) lies in memory as (N, *spatial, C) and not also
    as (N, C, *spatial): the case the core reads through ``layout="channels_last"``."""
    form = _FORMATS.get(x.dim())
    return form is not None and not x.is_contiguous() and x.is_contiguous(memory_format=form)


def _to_last(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, *range(2, x.dim()), 1)


def _to_first(y: torch.Tensor) -> torch.Tensor:
    return y.permute(0, y.dim() - 1, *range(1, y.dim() - 1))


def _array(x: torch.Tensor) -> np.ndarray:
    return x.detach().numpy()   # shares the tensor's memory, whatever its strides


@functools.lru_cache(maxsize=1024)
def _arguments(encoded: str) -> dict:
    return ast.literal_eval(encoded)


def _run(name: str, tensors, encoded: str, indices: bool, dy=None, samples=None):
    """The NumPy op ``name`` on the memory of ``tensors`` (``x``, and for unpooling its
    indices); with ``dy``, the gradient with respect to ``x`` instead."""
    kwargs = _arguments(encoded)
    last = kwargs.get("layout") == "channels_first" and _channels_last(tensors[0])
    if last:
        kwargs = dict(kwargs, layout="channels_last")
    view = (lambda t: _array(_to_last(t))) if last else _array
    back = (lambda a: _to_first(torch.from_numpy(np.ascontiguousarray(a)))) if last else (
        lambda a: torch.from_numpy(np.ascontiguousarray(a)))
    arrays = tuple(map(view, tensors))
    if samples is not None:   # (N, C, dims): not a tensor of the layout
        kwargs = dict(kwargs, samples=_array(samples))
    op = getattr(F, name)
    if dy is None:
        result = op(*arrays, return_indices=True, **kwargs) if indices else op(*arrays, **kwargs)
        return tuple(map(back, result)) if indices else back(result)
    _, pullback = F.__dict__[name]._ndpool_impl(*arrays, grad=True, **kwargs)
    return back(pullback(view(dy)).astype(arrays[0].dtype, copy=False))


def _fake(name: str, x: torch.Tensor, encoded: str):
    """An empty tensor of the op's output shape, in the memory format ``_run`` gives."""
    # the geometry works on ints: a symbolic size is specialised (a guard on its value),
    # so a compiled graph is reused for inputs of the same shape only
    shape = output_shape(name, tuple(int(s) for s in x.shape), _arguments(encoded))
    last = (len(shape) == x.dim() and _arguments(encoded).get("layout") == "channels_first"
            and _channels_last(x) and name not in _GLOBAL)
    form = _FORMATS[len(shape)] if last else torch.contiguous_format
    return x.new_empty(shape).contiguous(memory_format=form)


# --------------------------------------------------------------- registration
def _register(name: str):
    """Register ``ndpool::name`` (+ ``_with_indices``, ``_backward``) and make the
    public op ``name``, with the NumPy op's signature."""
    signature = inspect.signature(getattr(F, name))
    has_indices = "return_indices" in signature.parameters

    @torch.library.custom_op(f"{NAMESPACE}::{name}_backward", mutates_args=())
    def backward(dy: torch.Tensor, x: torch.Tensor, arguments: str) -> torch.Tensor:
        return _run(name, (x,), arguments, False, dy)

    backward.register_fake(lambda dy, x, arguments: torch.empty_like(x))

    @torch.library.custom_op(f"{NAMESPACE}::{name}", mutates_args=())
    def forward(x: torch.Tensor, arguments: str) -> torch.Tensor:
        return _run(name, (x,), arguments, False)

    forward.register_fake(lambda x, arguments: _fake(name, x, arguments))
    _autograd(forward, backward, 1)
    with_indices = None
    if has_indices:
        @torch.library.custom_op(f"{NAMESPACE}::{name}_with_indices", mutates_args=())
        def with_indices(x: torch.Tensor, arguments: str) -> tuple[torch.Tensor, torch.Tensor]:
            return _run(name, (x,), arguments, True)

        with_indices.register_fake(lambda x, arguments: (
            _fake(name, x, arguments), _fake(name, x, arguments).to(torch.int64)))
        _autograd(with_indices, backward, 2)
    _public(name, signature, forward, with_indices)


def _register_unpool(name: str):
    """Register ``ndpool::name`` and ``ndpool::name_backward`` for ``max_unpool*``, whose
    second tensor (the indices) gets no gradient, and make the public op."""

    @torch.library.custom_op(f"{NAMESPACE}::{name}_backward", mutates_args=())
    def backward(dy: torch.Tensor, x: torch.Tensor, indices: torch.Tensor,
                 arguments: str) -> torch.Tensor:
        return _run(name, (x, indices), arguments, False, dy)

    backward.register_fake(lambda dy, x, indices, arguments: torch.empty_like(x))

    @torch.library.custom_op(f"{NAMESPACE}::{name}", mutates_args=())
    def forward(x: torch.Tensor, indices: torch.Tensor, arguments: str) -> torch.Tensor:
        return _run(name, (x, indices), arguments, False)

    forward.register_fake(lambda x, indices, arguments: _fake(name, x, arguments))

    def setup_context(ctx, inputs, output):
        x, indices, arguments = inputs
        ctx.save_for_backward(x, indices)
        ctx.arguments = arguments

    def grad(ctx, dy):
        x, indices = ctx.saved_tensors
        return backward(dy, x, indices, ctx.arguments), None, None

    forward.register_autograd(grad, setup_context=setup_context)
    _public(name, inspect.signature(getattr(F, name)), forward, None, ("x", "indices"))


def _register_fractional(name: str):
    """Register ``ndpool::name`` (+ ``_with_indices``, ``_backward``) for
    ``fractional_max_pool*``: the samples that place the windows are a second tensor, so
    that the op is a function of its inputs (and the backward pass sees the same
    windows); the public op draws them with torch's generator when none are given, as
    ``torch.nn.functional`` does, or with NumPy's from ``rng``."""

    @torch.library.custom_op(f"{NAMESPACE}::{name}_backward", mutates_args=())
    def backward(dy: torch.Tensor, x: torch.Tensor, samples: torch.Tensor,
                 arguments: str) -> torch.Tensor:
        return _run(name, (x,), arguments, False, dy, samples=samples)

    backward.register_fake(lambda dy, x, samples, arguments: torch.empty_like(x))

    @torch.library.custom_op(f"{NAMESPACE}::{name}", mutates_args=())
    def forward(x: torch.Tensor, samples: torch.Tensor, arguments: str) -> torch.Tensor:
        return _run(name, (x,), arguments, False, samples=samples)

    @torch.library.custom_op(f"{NAMESPACE}::{name}_with_indices", mutates_args=())
    def with_indices(x: torch.Tensor, samples: torch.Tensor,
                     arguments: str) -> tuple[torch.Tensor, torch.Tensor]:
        return _run(name, (x,), arguments, True, samples=samples)

    forward.register_fake(lambda x, samples, arguments: _fake(name, x, arguments))
    with_indices.register_fake(lambda x, samples, arguments: (
        _fake(name, x, arguments), _fake(name, x, arguments).to(torch.int64)))

    def setup_context(ctx, inputs, output):
        x, samples, arguments = inputs
        ctx.save_for_backward(x, samples)
        ctx.arguments = arguments

    def grad(ctx, *dys):
        x, samples = ctx.saved_tensors
        return backward(dys[0], x, samples, ctx.arguments), None, None

    forward.register_autograd(grad, setup_context=setup_context)
    with_indices.register_autograd(grad, setup_context=setup_context)
    signature = inspect.signature(getattr(F, name))
    _public(name, signature, forward, with_indices, ("x", "samples"),
            "    samples = _draw(x, samples, rng, " + name[-2] + ")\n")


def _draw(x, samples, rng, rank):
    """The samples of a fractional pool, shape (N, C, rank) (or (C, rank) unbatched)."""
    if samples is not None:
        return torch.as_tensor(samples, dtype=x.dtype)
    shape = tuple(x.shape[:x.dim() - rank]) + (rank,)
    if rng is None:
        return torch.rand(shape, dtype=x.dtype)
    draw = np.random.default_rng(rng).random(shape).astype(_array(x).dtype)
    return torch.from_numpy(np.minimum(draw, np.nextafter(draw.dtype.type(1), 0)))


def _autograd(op, backward, outputs: int):
    """``dx = backward(dy, x, arguments)``; ``x`` is saved only when a gradient is wanted
    (under ``no_grad``/``inference_mode`` autograd calls neither function)."""

    def setup_context(ctx, inputs, output):
        x, arguments = inputs
        ctx.save_for_backward(x)
        ctx.arguments = arguments

    def grad(ctx, *dys):
        (x,) = ctx.saved_tensors
        return backward(dys[0], x, ctx.arguments), None

    op.register_autograd(grad, setup_context=setup_context)


def _public(name, signature, forward, with_indices, tensors=("x",), prelude=""):
    """The public op: checks devices and dtypes, encodes the other arguments as the
    literal of a dict (ndpool's arguments take unions such as int | tuple | pairs |
    word, which an op schema cannot spell; the literal keeps their exact meaning and is
    a constant to ``torch.compile``), and calls the custom op."""
    others = [p for p in signature.parameters
              if p not in tensors + ("return_indices", "rng")]
    entries = ", ".join(f"{p!r}: {'_sizes(output_size)' if p == 'output_size' else p}"
                        for p in others)
    call = ("(_with_indices if return_indices else _forward)"
            if with_indices is not None else "_forward")
    checks = prelude + "".join(f"    _check({name!r}, {t!r}, {t})\n" for t in tensors)
    source = (f"def {name}{signature}:\n{checks}"
              f"    return {call}({', '.join(tensors)}, repr({{{entries}}}))\n")
    namespace = {"_forward": forward, "_with_indices": with_indices, "_check": _check,
                 "_sizes": _sizes, "_draw": _draw}
    exec(source, namespace)  # noqa: S102  made above from the NumPy op's own signature
    op = namespace[name]
    op.__module__ = __name__
    op.__doc__ = (f"{name} of a CPU torch tensor; arguments and results as "
                  f"``ndpool.{name}`` (indices as int64 tensors).")
    globals()[name] = op
    __all__.append(name)


def _sizes(output_size):
    """``output_size`` as a literal: a ``torch.Size`` or list becomes a tuple."""
    if isinstance(output_size, (list, tuple)):
        return tuple(None if s is None else int(s) for s in output_size)
    return output_size


_DTYPES = (torch.float16, torch.float32, torch.float64, torch.uint8, torch.int8,
           torch.int16, torch.int32, torch.int64)


def _check(name: str, argument: str, x):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"ndpool.torch.{name}: {argument} must be a torch.Tensor, got "
                        f"{type(x).__name__}; use ndpool.{name} for NumPy arrays")
    if x.device.type != "cpu":
        raise ValueError(f"ndpool.torch.{name}: {argument} is on device '{x.device}', but ndpool "
                         f"runs on the CPU (move it with x.cpu())")
    if x.dtype not in _DTYPES:
        raise TypeError(f"ndpool.torch.{name}: {argument} has dtype {x.dtype}, which is not "
                        f"supported; use float16, float32, float64 or an integer type")


for _family, _ranks in _BRIDGED:
    for _rank in _ranks:
        _register(f"{_family}{_rank}d")
for _name in _GLOBAL:
    _register(_name)
for _rank in (1, 2, 3):
    _register_unpool(f"max_unpool{_rank}d")
for _rank in (2, 3):
    _register_fractional(f"fractional_max_pool{_rank}d")

from . import nn  # noqa: E402  the modules call the ops defined above
