"""ndpool's ops for JAX arrays on the CPU, through XLA's FFI: no Python on the hot path.

>>> import jax, jax.numpy as jnp, ndpool.jax
>>> x = jnp.arange(16.0).reshape(1, 1, 4, 4)
>>> ndpool.jax.max_pool2d(x, 2)
Array([[[[ 5.,  7.],
         [13., 15.]]]], dtype=float32)
>>> jax.grad(lambda x: ndpool.jax.max_pool2d(x, 2).sum())(x)[0, 0]
Array([[0., 0., 0., 0.],
       [0., 1., 0., 1.],
       [0., 0., 0., 0.],
       [0., 1., 0., 1.]], dtype=float32)

Every op of ``ndpool`` (but ``pool`` and ``coarsen``) under the same name and
arguments. Arguments are checked and the window geometry is made by the NumPy ops' own
code, once per shape, when JAX traces the call; the core then runs as an XLA custom call
(``jax.ffi.ffi_call``) registered with everything static about it, forward and backward
(a ``jax.custom_vjp`` with ndpool's backward rule), under ``jax.jit``, ``jax.grad`` and
``jax.vmap``. The handler is an extension of its own, built against jaxlib's headers:
``pip install ./jax-ffi`` from an ndpool checkout.

Indices are int64 when ``jax_enable_x64`` is on, else int32 (JAX's own integers);
``fractional_max_pool*`` place their windows from ``samples`` or ``rng`` known when the
call is traced (not from traced arrays), and cannot be batched by ``vmap``.
"""
from __future__ import annotations

import functools
import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import _core, functional as F
from .._arguments import choice, flag, int_tuple
from .._errors import fail, type_fail
from .._layout import Layout, axes3, layout_for, layout_word, spatial3
from .._window import adaptive_window, fractional_window, stride_or_kernel
from ..backends.compiled import _geometry, _winner_dtype
from ..functional import _ops

try:
    import ndpool_jax_ffi
except ImportError as error:  # pragma: no cover - the message is the point
    raise ImportError("ndpool.jax calls the core through its XLA FFI handler, an extension "
                      "of its own: install it from an ndpool checkout with "
                      "`pip install ./jax-ffi` (it needs jax and jaxlib)") from error

__all__ = []
TARGET = "ndpool_run"
jax.ffi.register_ffi_target(TARGET, ndpool_jax_ffi.handler(), platform="cpu")

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_INTEGERS = tuple(np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64, np.uint8,
                                        np.uint16, np.uint32, np.uint64))


# --------------------------------------------------------------------- the calls
@functools.lru_cache(maxsize=None)
def _handle(op, axes, spatial, dtype, kind="max", channels_last=False, lanes=1,
            divisor=None, winner_bytes=0, index_bytes=8, sizes=(0, 0)):
    """The core's handle of one call (registered once: calls live as long as the
    process, and a traced program reuses its own)."""
    plan = None if axes is None else _geometry(axes, spatial)
    return _core.register_call(op, plan, dtype.kind, dtype.itemsize, kind, channels_last,
                               lanes, None if divisor is None else divisor.factors,
                               winner_bytes, index_bytes, *sizes)


class _Divisor:
    """A mean's divisor factors, hashed by the Window they belong to (for _handle)."""

    def __init__(self, key, factors):
        self.key, self.factors = key, factors

    def __hash__(self):
        return hash(self.key)

    def __eq__(self, other):
        return isinstance(other, _Divisor) and self.key == other.key


def _call(handle: int, results, *args):
    return jax.ffi.ffi_call(TARGET, results, vmap_method="broadcast_all")(
        *args, handle=np.int64(handle))


def _canonical_shape(lay: Layout, spatial) -> tuple:
    """The backend's (planes, D, H, W) or (batch, D, H, W, channels) of ``spatial``."""
    spatial = spatial3(spatial)
    return ((lay.batch,) + spatial + (lay.channels,)) if lay.channels_last else (
        (lay.planes,) + spatial)


def _indices_type():
    """int64 where JAX keeps 64-bit integers, else int32 (read as the low words)."""
    return jnp.int64 if jax.config.jax_enable_x64 else jnp.int32


def _flat_result(shape):
    """The result type of flat int64 winners: int64, or pairs of uint32 words."""
    if jax.config.jax_enable_x64:
        return jax.ShapeDtypeStruct(shape, jnp.int64)
    return jax.ShapeDtypeStruct(shape + (2,), jnp.uint32)


def _flat_indices(raw):
    if jax.config.jax_enable_x64:
        return raw
    return raw[..., 0].astype(jnp.int32)   # little-endian low words; planes < 2**31 cells


# ---------------------------------------------------------------- input checks
def _array(name: str, x, integers: bool):
    """``x`` as a JAX array of a dtype the core takes, with a clear error otherwise."""
    if not isinstance(x, (jax.Array, np.ndarray, np.generic)) and not hasattr(x, "__jax_array__"):
        type_fail(f"ndpool.jax.{name}", f"x must be a JAX array, got {type(x).__name__}")
    x = jnp.asarray(x)
    dtype = np.dtype(x.dtype)
    if dtype not in _FLOATS and not (integers and dtype in _INTEGERS):
        kinds = "float16, float32, float64" + (" or an integer type" if integers else "")
        type_fail(f"ndpool.jax.{name}", f"x has dtype {dtype}; use {kinds}")
    devices = () if isinstance(x, jax.core.Tracer) else x.devices()
    for device in devices:
        if device.platform != "cpu":
            fail(f"ndpool.jax.{name}", f"x is on device {device}, but ndpool runs on the CPU "
                 f"(move it with jax.device_put(x, jax.devices('cpu')[0]))")
    return x


def _shape_only(x):
    """A NumPy stand-in of ``x``'s shape and dtype (no memory) for the NumPy ops' checks."""
    return np.broadcast_to(np.empty((), x.dtype), x.shape)


# ------------------------------------------------------------------- max / min
def _extreme(kind: str, x, lay: Layout, win, return_indices: bool, ties: str, column=False):
    """Max/min over ``win`` with ndpool's backward rule for ``ties``."""
    axes, dtype = axes3(win), np.dtype(x.dtype)
    spatial, out_shape = spatial3(lay.spatial), _canonical_shape(lay, win.out_size)
    last, lanes = lay.channels_last, lay.channels
    if return_indices:
        winner, results = 8, (jax.ShapeDtypeStruct(out_shape, dtype), _flat_result(out_shape))
    else:
        winner = _winner_dtype(axes, "any").itemsize
        kept = {1: jnp.uint8, 2: jnp.uint16}.get(winner)
        results = (jax.ShapeDtypeStruct(out_shape, dtype),
                   jax.ShapeDtypeStruct(out_shape, kept) if kept else _flat_result(out_shape))
    # the plain call asks for winners only when they are a result; the one that saves
    # for the backward pass keeps the cheapest form of them
    plain = _handle("forward", axes, spatial, dtype, kind, last, lanes, None,
                    winner if return_indices else 0)
    forward = _handle("forward", axes, spatial, dtype, kind, last, lanes, None, winner)
    if dtype.kind != "f":   # integers have no gradient
        backward = None
    elif ties == "first":
        backward = _handle("scatter", axes, spatial, dtype, "max", last, lanes, None, winner)
    else:
        backward = _handle("split_ties", axes, spatial, dtype, kind, last, lanes)

    def run(x3):
        if not return_indices:
            return _call(plain, results[:1], x3)[0]
        y3, raw = _call(plain, results, x3)
        return y3, _flat_indices(raw)

    def run_saving(x3):
        y3, raw = _call(forward, results, x3)
        out = (y3, _flat_indices(raw)) if return_indices else y3
        return out, (raw if ties == "first" else x3)

    def rule(saved, cotangent):
        dy3 = cotangent[0] if return_indices else cotangent
        dx = jax.ShapeDtypeStruct(saved.shape if ties != "first" else
                                  _canonical_shape(lay, lay.spatial), dy3.dtype)
        if ties == "first":
            return (_call(backward, dx, dy3, saved),)
        return (_call(backward, dx, saved, dy3),)

    if backward is None:
        y = run(x.reshape(_canonical_shape(lay, lay.spatial)))
    else:
        pooled = jax.custom_vjp(run)
        pooled.defvjp(run_saving, rule)
        y = pooled(x.reshape(_canonical_shape(lay, lay.spatial)))
    if not return_indices:
        return lay.restore(y, win.out_size)
    y3, idx3 = y
    idx = lay.restore(idx3, win.out_size)
    return lay.restore(y3, win.out_size), (_column_major(idx, win.in_size) if column else idx)


def _column_major(idx, in_size):
    """Row-major flat indices renumbered column-major (ONNX's storage_order=1)."""
    out, rest, scale = 0, idx, 1
    strides = [math.prod(in_size[d + 1:]) for d in range(len(in_size))]
    for d, size in enumerate(in_size):
        coordinate = rest // strides[d]
        rest = rest - coordinate * strides[d]
        out = out + coordinate * scale
        scale *= size
    return out.astype(idx.dtype)


# --------------------------------------------------------------------- averages
def _mean(x, lay: Layout, win, divisor_key, factors):
    axes, dtype = axes3(win), np.dtype(x.dtype)
    spatial, out_shape = spatial3(lay.spatial), _canonical_shape(lay, win.out_size)
    last, lanes = lay.channels_last, lay.channels
    divisor = _Divisor(divisor_key, factors)
    forward = _handle("forward", axes, spatial, dtype, "sum", last, lanes, divisor)
    backward = _handle("spread", axes, spatial, dtype, "sum", last, lanes, divisor)
    in_shape = _canonical_shape(lay, lay.spatial)

    @jax.custom_vjp
    def pooled(x3):
        return _call(forward, (jax.ShapeDtypeStruct(out_shape, dtype),), x3)[0]

    def rule(_, dy3):
        return (_call(backward, (jax.ShapeDtypeStruct(in_shape, dy3.dtype),), dy3)[0],)

    pooled.defvjp(lambda x3: (pooled(x3), None), rule)
    return lay.restore(pooled(x.reshape(in_shape)), win.out_size)


def _lp(x, norm_type, lay: Layout, win):
    """Lp pooling as the NumPy op composes it: ``(sign(a) relu(|a|) K) ** (1/p)`` with
    ``a`` the padded window mean of ``x**p``; the gradient as its pullback has it."""
    p, volume = x.dtype.type(norm_type), x.dtype.type(win.volume)
    inverse = x.dtype.type(1.0 / norm_type)

    @jax.custom_vjp
    def lp(x):
        a = _mean(x ** p, lay, win, (win, None), _ops._divisors(win))
        return (jnp.sign(a) * jnp.maximum(jnp.abs(a), 0) * volume) ** inverse

    def forward(x):
        a = _mean(x ** p, lay, win, (win, None), _ops._divisors(win))
        v = jnp.sign(a) * jnp.maximum(jnp.abs(a), 0) * volume
        return v ** inverse, (x, a, v)

    def rule(saved, dy):
        x, a, v = saved
        sign = jnp.sign(a)
        safe = jnp.where(jnp.abs(a) > 0, v, 1)
        g_v = dy * (inverse * safe ** (inverse - 1))
        g_a = jnp.where(jnp.abs(a) > 0, g_v * volume * sign, 0).astype(x.dtype) * sign
        _, spread = jax.vjp(lambda t: _mean(t, lay, win, (win, None), _ops._divisors(win)), x)
        return (spread(g_a)[0] * (p * x ** (p - 1)),)

    lp.defvjp(forward, rule)
    return lp(x)


# ------------------------------------------------------------------- unpooling
def _unpool(x, indices, lay: Layout, out):
    dtype = np.dtype(x.dtype)
    if lay.channels_last:   # the indices are flat per (n, c) plane: unpool channels-first
        first = lay.first()
        moved = _unpool(jnp.moveaxis(x, -1, lay.channel_axis),
                        jnp.moveaxis(indices, -1, lay.channel_axis), first, out)
        return jnp.moveaxis(moved, lay.channel_axis, -1)
    n_in, n_out = math.prod(lay.spatial), math.prod(out)
    index = jnp.asarray(indices)
    if np.dtype(index.dtype) not in (np.dtype(np.int32), np.dtype(np.int64)):
        index = index.astype(_indices_type())
    index_bytes = np.dtype(index.dtype).itemsize
    sizes = (n_in, n_out)
    forward = _handle("unpool", None, None, dtype, index_bytes=index_bytes, sizes=sizes)
    backward = _handle("unpool_backward", None, None, dtype, index_bytes=index_bytes,
                       sizes=sizes)
    index = index.reshape(lay.planes, n_in)

    def run(x2, index):
        return _call(forward, (jax.ShapeDtypeStruct((lay.planes, n_out), dtype),), x2, index)[0]

    if dtype.kind == "f":   # integers have no gradient: the forward pass alone
        unpooled = jax.custom_vjp(run)

        def rule(index, dy):
            shape = jax.ShapeDtypeStruct((lay.planes, n_in), dy.dtype)
            return _call(backward, (shape,), dy, index)[0], None

        unpooled.defvjp(lambda x2, index: (run(x2, index), index), rule)
        run = unpooled
    return run(x.reshape(lay.planes, n_in), index).reshape(lay.lead + tuple(out))


# ------------------------------------------------------------------ public ops
def _sliding_geometry(name, rank, x, a, count_include_pad=False, lp=False):
    return _ops._sliding(name, _shape_only(x), rank, a["kernel_size"], a["stride"],
                         a["padding"], a["dilation"], a["ceil_mode"], count_include_pad,
                         a["layout"], lp=lp)


def _extreme_pool(kind, name, rank, a):
    x = _array(name, a["x"], integers=True)
    lay, win = _sliding_geometry(name, rank, x, a)
    storage_order = a["storage_order"]
    if storage_order not in (0, 1) or isinstance(storage_order, bool):
        fail(name, f"storage_order={storage_order!r} is not 0 (row-major indices) or 1 "
             f"(column-major, ONNX's)")
    return _extreme(kind, x, lay, win, flag(name, "return_indices", a["return_indices"]),
                    choice(name, "ties", a["ties"], _ops.TIES), column=storage_order == 1)


def _avg_pool(name, rank, a):
    x = _array(name, a["x"], integers=False)
    lay, win = _sliding_geometry(name, rank, x, a, a["count_include_pad"])
    override = a["divisor_override"]
    _ops.check_divisor_override(name, override)
    return _mean(x, lay, win, (win, override), _ops._divisors(win, override))


def _lp_pool(name, rank, a):
    x = _array(name, a["x"], integers=False)
    _ops.check_norm_type(name, a["norm_type"])
    lay, win = _sliding_geometry(name, rank, x, a, True, lp=True)
    return _lp(x, a["norm_type"], lay, win)


def _adaptive(kind, name, rank, a):
    x = _array(name, a["x"], integers=kind == "max")
    lay = layout_for(name, tuple(x.shape), rank, a["layout"])
    win = adaptive_window(lay.spatial, _ops._output_size(name, a["output_size"], lay))
    if kind == "max":
        return _extreme("max", x, lay, win, flag(name, "return_indices", a["return_indices"]),
                        "first")
    return _mean(x, lay, win, (win, None), _ops._divisors(win))


def _global(kind, name, a):
    x = _array(name, a["x"], integers=kind == "max")
    keepdims = flag(name, "keepdims", a["keepdims"])
    last = layout_word(name, a["layout"]) == "channels_last"
    if x.ndim < 3:
        fail(name, f"x must have shape {'(N, *spatial, C)' if last else '(N, C, *spatial)'} "
             f"with at least one spatial dim, got shape {tuple(x.shape)}")
    n, c = (x.shape[0], x.shape[-1]) if last else x.shape[:2]
    cells = math.prod(x.shape[1:-1] if last else x.shape[2:])
    flat = x.reshape((n, cells, c) if last else (n, c, cells))
    lay = layout_for(name, tuple(flat.shape), 1, "channels_last" if last else "channels_first")
    win, _, divisor = _ops._whole_plane(lay.spatial)
    y = (_extreme("max", flat, lay, win, False, "first") if kind == "max"
         else _mean(flat, lay, win, (win, None), divisor))
    if not keepdims:
        return y.reshape(n, c)
    ones = (1,) * (x.ndim - 2)
    return y.reshape((n,) + ones + (c,) if last else (n, c) + ones)


def _fractional(name, rank, a):
    x = _array(name, a["x"], integers=False)
    lay = layout_for(name, tuple(x.shape), rank, a["layout"])
    kernel = int_tuple(name, "kernel_size", a["kernel_size"], rank)
    out = _ops._fractional_size(name, lay, kernel, a["output_size"], a["output_ratio"])
    samples = a["samples"]
    if isinstance(samples, jax.core.Tracer):
        type_fail(f"ndpool.jax.{name}", "samples must be known when the call is traced "
                  "(a NumPy array or a concrete JAX array), not a traced value")
    table = _ops._samples(name, lay, None if samples is None else np.asarray(samples),
                          a["rng"], np.dtype(x.dtype))
    if not lay.planes:
        table = np.zeros((1, lay.rank), dtype=x.dtype)
    win = fractional_window(lay.spatial, out, kernel, table)
    return_indices = flag(name, "return_indices", a["return_indices"])
    if lay.channels_last:   # the windows differ per (n, c) plane: pool channels-first
        result = _extreme("max", jnp.moveaxis(x, -1, lay.channel_axis), lay.first(), win,
                          return_indices, "first")
        back = lambda t: jnp.moveaxis(t, lay.channel_axis, -1)
        return tuple(map(back, result)) if return_indices else back(result)
    return _extreme("max", x, lay, win, return_indices, "first")


def _max_unpool(name, rank, a):
    x = _array(name, a["x"], integers=True)
    lay = layout_for(name, tuple(x.shape), rank, a["layout"])
    kernel = int_tuple(name, "kernel_size", a["kernel_size"], rank)
    strides = stride_or_kernel(name, a["stride"], rank, kernel)
    pads = int_tuple(name, "padding", a["padding"], rank, minimum=0)
    out = _ops._unpool_size(name, lay, kernel, strides, pads, a["output_size"])
    indices = jnp.asarray(a["indices"])
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        type_fail(name, f"indices has dtype {indices.dtype}; use an integer dtype")
    if tuple(indices.shape) != tuple(x.shape):
        fail(name, f"indices has shape {tuple(indices.shape)} but x has shape {tuple(x.shape)}")
    return _unpool(x, indices, lay, out)


def _family(name: str):
    """The implementation of public op ``name``: ``(name, arguments) -> result``."""
    if name.startswith("global_"):
        return functools.partial(_global, name[7:10], name)
    if not name.endswith(("1d", "2d", "3d")):
        return None
    rank = int(name[-2])
    for prefix, make in (("max_pool", functools.partial(_extreme_pool, "max")),
                         ("min_pool", functools.partial(_extreme_pool, "min")),
                         ("avg_pool", _avg_pool), ("lp_pool", _lp_pool),
                         ("adaptive_max_pool", functools.partial(_adaptive, "max")),
                         ("adaptive_avg_pool", functools.partial(_adaptive, "avg")),
                         ("fractional_max_pool", _fractional), ("max_unpool", _max_unpool)):
        if name.startswith(prefix):
            return functools.partial(make, name, rank)
    return None   # not bridged (yet): pool, and ops without a JAX form


def _public(name: str):
    """``ndpool.jax.<name>``: the NumPy op's signature, run on JAX arrays."""
    signature = inspect.signature(getattr(F, name))
    run = _family(name)
    if run is None:
        return None

    @functools.wraps(getattr(F, name))
    def op(*args, **kwargs):
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"ndpool.jax.{name}: {error}") from None
        bound.apply_defaults()
        return run(bound.arguments)

    op.__module__ = __name__
    op.__doc__ = (f"{name} of a JAX array, on the CPU through XLA's FFI; arguments and "
                  f"results as ``ndpool.{name}`` (see the module's docstring).")
    globals()[name] = op
    __all__.append(name)
    return op


for _name in F.__all__:
    _public(_name)
