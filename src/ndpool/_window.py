"""Window geometry: the one place that turns pooling arguments into output sizes and taps.

Every op reduces to, per spatial dim, a table of windows: where each window's first
in-bounds tap sits, how many in-bounds taps it has, the step between taps and the
divisor an average uses. Backends receive these tables and plain integers; they never
re-derive sizes, padding or ceil_mode themselves.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from ._arguments import MAX_SIZE, int_tuple, is_int
from ._errors import fail, type_fail

Ints = Tuple[int, ...]
#: explicit padding, one (before, after) pair per spatial dim
Pads = Tuple[Tuple[int, int], ...]

#: the padding words, as read after lower-casing: TensorFlow's "valid" and "same" (out =
#: ceil(in / stride), the odd cell at the end), ONNX's "same_upper" (the same rule, read
#: as "same") and "same_lower" (the odd cell at the start)
PADDING_WORDS = ("valid", "same", "same_upper", "same_lower")


# ------------------------------------------------------------------ padding forms
def padding_form(op: str, value, rank: int, kernel: Ints, ceil_mode: bool = False,
                 channels_last: bool = False) -> Union[str, Pads]:
    """Every framework's way of writing ``padding``, as a word or (before, after) pairs.

    - an int, a 1-tuple or one int per spatial dim: PyTorch's padding on both sides, at
      most half the kernel (PyTorch's rule);
    - ``2 * rank`` ints: ``torch.nn.functional.pad``'s order, last dim first (left,
      right, top, bottom, front, back), as tinygrad takes it;
    - one (before, after) pair per spatial dim, or one pair for all; ``rank + 2`` pairs:
      TensorFlow's form, whose batch and channel rows (where ``channels_last`` puts
      them) must be (0, 0). ONNX's ``pads`` (all befores, then all afters) become pairs
      as ``tuple(zip(pads[:rank], pads[rank:]))``;
    - a word in any case: "valid", "same" (= "same_upper"), "same_lower".

    Explicit before/after padding may exceed half the kernel (TensorFlow and ONNX allow
    it); ``sliding_window`` refuses a window lying wholly in the padding.
    """
    if type(value) is int and 0 <= value <= min(kernel) // 2:   # the common case, quickly
        return ((value, value),) * rank
    if isinstance(value, str):
        return _padding_word(op, value, ceil_mode)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iu":
            type_fail(op, f"padding={value!r} must hold ints, not {value.dtype}")
        value = value.tolist()
    if isinstance(value, (tuple, list)):
        if value and all(isinstance(v, (tuple, list, np.ndarray)) for v in value):
            return _padding_pairs(op, value, rank, channels_last)
        if all(is_int(v) for v in value) and len(value) == 2 * rank:
            flat = _checked_pads(op, value, value)   # last dim first
            return tuple((flat[2 * (rank - 1 - dim)], flat[2 * (rank - 1 - dim) + 1])
                         for dim in range(rank))
        if all(is_int(v) for v in value) and len(value) not in (1, rank):
            counts = "1 int" if rank == 1 else f"1 or {rank} ints"
            fail(op, f"padding={value!r} must have {counts} (both sides of each dim), "
                 f"or {2 * rank} in torch.nn.functional.pad's order (last dim first)")
    pads = int_tuple(op, "padding", value, rank, minimum=0)
    for pad, k in zip(pads, kernel):
        if pad > k // 2:
            fail(op, f"padding={value!r} must be at most half of kernel_size="
                 f"{kernel if len(set(kernel)) > 1 else kernel[0]}",
                 "give (before, after) pairs for more")
    return tuple((pad, pad) for pad in pads)


def _padding_word(op: str, value: str, ceil_mode: bool) -> str:
    word = value.lower()
    if word not in PADDING_WORDS:
        fail(op, f"padding={value!r} is not a padding word",
             "use 'valid', 'same', 'same_lower' (any case) or ints")
    if ceil_mode:
        fail(op, f"ceil_mode=True cannot be combined with padding={value!r}")
    return "same" if word == "same_upper" else word


def _padding_pairs(op: str, value, rank: int, channels_last: bool) -> Pads:
    """(before, after) pairs: one per spatial dim, one for all, or TensorFlow's rank + 2."""
    rows = [list(v.tolist() if isinstance(v, np.ndarray) else v) for v in value]
    for row in rows:
        if len(row) != 2 or not all(is_int(v) for v in row):
            fail(op, f"padding={value!r} holds {tuple(row)!r}, which is not a "
                 f"(before, after) pair of ints",
                 kind=TypeError if len(row) == 2 else ValueError)
    _checked_pads(op, value, [v for row in rows for v in row])
    if len(rows) == rank + 2:
        extra = (0, rank + 1) if channels_last else (0, 1)
        if any(rows[i] != [0, 0] for i in extra):
            names = "(batch, ..., channels)" if channels_last else "(batch, channels, ...)"
            fail(op, f"padding={value!r} pads the batch or channel dim; with rank + 2 "
                 f"pairs {names} those rows must be (0, 0)")
        rows = [row for i, row in enumerate(rows) if i not in extra]
    elif len(rows) == 1:
        rows = rows * rank
    if len(rows) != rank:
        fail(op, f"padding={value!r} has {len(value)} (before, after) pairs; give 1, "
             f"{rank} (one per spatial dim) or {rank + 2} (TensorFlow's, with batch and "
             f"channel rows)")
    return tuple((int(lo), int(hi)) for lo, hi in rows)


def _checked_pads(op: str, value, pads) -> Ints:
    if any(v < 0 for v in pads):
        fail(op, f"padding={value!r} must be at least 0")
    if any(v > MAX_SIZE for v in pads):
        fail(op, f"padding={value!r} must be at most {MAX_SIZE}")
    return tuple(int(v) for v in pads)


def describe_padding(padding: Union[str, Pads]):
    """The padding as a message shows it: a word, one int per dim when both sides agree,
    else the pairs."""
    if isinstance(padding, str) or any(lo != hi for lo, hi in padding):
        return padding
    return tuple(lo for lo, _ in padding)


def stride_or_kernel(op: str, stride, rank: int, kernel: Ints) -> Ints:
    """``stride``, or the kernel size when it is None or empty (PyTorch reads ``()`` so)."""
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        return kernel
    return int_tuple(op, "stride", stride, rank)


def counts_padding(padding: Union[str, Pads], count_include_pad: bool, *,
                   sums: bool = False) -> bool:
    """Whether an average's divisor counts padded cells: PyTorch's ``count_include_pad``
    for explicit padding, never for a padding word (TensorFlow's AvgPool; ONNX's
    AveragePool counts them under ``auto_pad`` when ``count_include_pad=1``). Always
    for Lp pooling (``sums``): its divisor only undoes the mean inside PyTorch's
    composition, so that a padded window sums its cells (ONNX's LpPool)."""
    return sums or (count_include_pad and not isinstance(padding, str))


def column_major(indices: np.ndarray, in_size: Ints) -> np.ndarray:
    """Flat per-plane row-major ``indices`` renumbered column-major (the first spatial dim
    fastest): ONNX MaxPool's ``storage_order=1``."""
    position = np.unravel_index(indices, tuple(in_size))
    return np.ravel_multi_index(position, tuple(in_size), order="F").astype(np.int64,
                                                                             copy=False)


@dataclass(frozen=True, eq=False)   # compared and hashed by identity: the tables are
class Axis:                          # made once per cached Window
    """Windows along one spatial dim, as tables the backends read directly.

    ``first[p, o]`` is the input position of window ``o``'s first in-bounds tap (``p``
    indexes planes for fractional pooling, else it has length 1), ``count[p, o]`` the
    number of in-bounds taps, ``step`` the distance between taps, ``skip[p, o]`` how many
    taps of the full kernel fall before ``first`` (in the padding; same shape as ``first``) and ``divisor[o]`` the
    per-dim factor of an average's divisor. ``kernel`` is the number of taps of the
    full kernel and ``stride`` the distance between window starts (0 when the windows
    are not evenly spaced: adaptive and fractional pooling).
    """

    first: np.ndarray
    count: np.ndarray
    step: int
    skip: np.ndarray
    divisor: np.ndarray
    kernel: int = 1
    stride: int = 0
    size: int = 0      # the input size, where the tables need it said (max_unpool)

    @property
    def out(self) -> int:
        return self.first.shape[-1]


@dataclass(frozen=True)
class Window:
    """Frozen geometry of one pooling call over 1 to 3 spatial dims.

    ``kernel``, ``stride``, ``dilation``, ``pad_lo`` and ``pad_hi`` are set for regular
    (sliding) windows; adaptive and fractional windows leave ``stride`` as ``None`` and
    carry their tables in ``axes`` only. ``pad_hi`` is the padding the last window
    actually reaches on the right, ceil_mode overhang included.
    """

    in_size: Ints
    out_size: Ints
    kernel: Ints
    stride: Optional[Ints]
    dilation: Ints
    pad_lo: Ints
    pad_hi: Ints
    axes: Tuple[Axis, ...]

    def __hash__(self) -> int:  # arrays in `axes` are derived from the other fields
        return hash((self.in_size, self.out_size, self.kernel, self.stride,
                     self.dilation, self.pad_lo, self.pad_hi))

    def __eq__(self, other) -> bool:
        return isinstance(other, Window) and hash(self) == hash(other) and all(
            np.array_equal(a.first, b.first) for a, b in zip(self.axes, other.axes))

    @property
    def rank(self) -> int:
        return len(self.in_size)

    @property
    def regular(self) -> bool:
        """Sliding windows with one stride (not adaptive, not fractional)."""
        return self.stride is not None

    @property
    def volume(self) -> int:
        return math.prod(self.kernel)


def _axis(first, count, step, skip, divisor, kernel=None, stride=0) -> Axis:
    as_table = lambda a: np.ascontiguousarray(np.atleast_2d(np.asarray(a, dtype=np.int64)))
    first, count = as_table(first), as_table(count)
    skip = as_table(np.broadcast_to(np.asarray(skip, dtype=np.int64), first.shape))
    if kernel is None:
        kernel = int((skip + count).max())
    return Axis(first=first, count=count, step=int(step), skip=skip,
                divisor=np.asarray(divisor, dtype=np.float64), kernel=int(kernel),
                stride=int(stride))


def _sliding_axis(size, out, kernel, stride, dilation, pad_lo, count_lo, count_hi) -> Axis:
    """Taps of windows starting at ``o*stride - pad_lo``, clipped to the input; the
    divisor counts the taps in ``[count_lo, count_hi)``."""
    start = np.arange(out, dtype=np.int64) * stride - pad_lo
    skip = np.clip(np.where(start < 0, -(start // dilation), 0), 0, kernel)  # ceil(-start/d)
    last = np.minimum(kernel - 1, (size - 1 - start) // dilation)
    count = np.maximum(last - skip + 1, 0)
    first = start + skip * dilation
    counted_first = np.maximum(-((start - count_lo) // dilation), 0)
    counted_last = np.minimum((count_hi - 1 - start) // dilation, kernel - 1)
    divisor = np.maximum(counted_last - counted_first + 1, 0)
    return _axis(first, count, dilation, skip, divisor, kernel, stride)


def _out_size(size, kernel, stride, pad_lo, pad_hi, dilation, ceil_mode) -> int:
    extent = dilation * (kernel - 1) + 1
    span = size + pad_lo + pad_hi - extent + (stride - 1 if ceil_mode else 0)
    out = span // stride + 1
    # PyTorch's correction (ONNX's too, since opset 19): the last window must start
    # inside the input or the left pad.
    if ceil_mode and (out - 1) * stride >= size + pad_lo:
        out -= 1
    return out


def _word_pads(word: str, size: int, stride: int, extent: int) -> Tuple[int, int]:
    """A padding word's (before, after) pads, for out = ceil(in / stride) windows ("valid":
    none). TensorFlow's "same" puts the odd cell at the end, ONNX's "same_lower" at the
    start."""
    if word == "valid":
        return 0, 0
    total = max((-(-size // stride) - 1) * stride + extent - size, 0)
    lo = total // 2 if word == "same" else total - total // 2
    return lo, total - lo


@functools.lru_cache(maxsize=512)
def sliding_window(op: str, in_size: Ints, kernel: Ints, stride: Ints, padding,
                   dilation: Ints, ceil_mode: bool, count_pad: bool) -> Window:
    """Geometry of a max/min/avg/lp pool; ``padding`` is a word or (before, after) pairs
    (see ``padding_form``); an average's divisor counts padded cells when ``count_pad``
    (see ``counts_padding``), never the ceil_mode overhang."""
    outs, lows, highs, axes = [], [], [], []
    for dim, size in enumerate(in_size):
        k, s, d = kernel[dim], stride[dim], dilation[dim]
        extent = d * (k - 1) + 1
        # a word becomes explicit pads first, and then follows the same rule
        lo, pad_hi = (_word_pads(padding, size, s, extent) if isinstance(padding, str)
                      else padding[dim])
        out = _out_size(size, k, s, lo, pad_hi, d, ceil_mode)
        count_lo, count_hi = (-lo, size + pad_hi) if count_pad else (0, size)
        if out < 1:
            fail(op, f"kernel_size={kernel} with dilation={dilation} does not fit in the "
                 f"input of spatial size {in_size} with "
                 f"padding={describe_padding(padding)!r}", "the output would be empty")
        hi = (out - 1) * s + extent - size - lo
        outs.append(out), lows.append(lo), highs.append(max(hi, 0))
        axes.append(_sliding_axis(size, out, k, s, d, lo, count_lo, count_hi))
        if not axes[-1].count.all():
            _all_padding(op, in_size, kernel, dilation, padding)
    return Window(tuple(in_size), tuple(outs), tuple(kernel), tuple(stride),
                  tuple(dilation), tuple(lows), tuple(highs), tuple(axes))


def _all_padding(op, in_size, kernel, dilation, padding):
    """A window with no tap in the input: PyTorch gives -inf with an index outside the
    input, ONNX Runtime refuses pads as large as the kernel; refuse it too."""
    shown = describe_padding(padding)
    if any(d > 1 for d in dilation):
        fail(op, f"dilation={dilation} with padding={shown!r} makes a window whose "
             f"taps all fall in the padding of the input of spatial size {in_size}",
             "reduce padding or dilation")
    fail(op, f"kernel_size={kernel} with padding={shown!r} makes a window whose taps all "
         f"fall in the padding of the input of spatial size {in_size}",
         "each side's padding must be smaller than the kernel")


@functools.lru_cache(maxsize=256)
def adaptive_window(in_size: Ints, out_size: Ints) -> Window:
    """Windows from floor(o*in/out) to ceil((o+1)*in/out), as PyTorch's adaptive pools."""
    axes = []
    for size, out in zip(in_size, out_size):
        o = np.arange(out, dtype=np.int64)
        start = (o * size) // out
        end = -((-(o + 1) * size) // out)
        axes.append(_axis(start, end - start, 1, np.zeros(out), end - start))
    kernel = tuple(int(a.count.max()) for a in axes)
    ones = (1,) * len(in_size)
    return Window(tuple(in_size), tuple(out_size), kernel, None, ones,
                  (0,) * len(in_size), (0,) * len(in_size), tuple(axes))


def unpool_window(out_size: Ints, pooled: Ints, kernel: Ints, stride: Ints,
                  padding: Ints) -> Window:
    """The pooling windows that max_unpool inverts: ``pooled`` windows over an input of
    ``out_size`` (the unpooled size, which ``output_size`` may make differ by less than a
    stride from what the windows span, so some may reach past the end)."""
    axes = []
    for size, out, k, s, p in zip(out_size, pooled, kernel, stride, padding):
        axis = _sliding_axis(size, out, k, s, 1, p, -p, size + p)
        axes.append(Axis(axis.first, axis.count, axis.step, axis.skip, axis.divisor,
                         axis.kernel, axis.stride, size))
    ones = (1,) * len(out_size)
    return Window(tuple(out_size), tuple(pooled), tuple(kernel), tuple(stride), ones,
                  tuple(padding), tuple(padding), tuple(axes))


def fractional_intervals(samples: np.ndarray, size: int, out: int, kernel: int) -> np.ndarray:
    """PyTorch's pseudo-random window starts, computed in the samples' own float type.

    ``samples`` has one entry per plane; the result has shape (planes, out).
    """
    dtype = samples.dtype.type
    starts = np.empty((samples.shape[0], out), dtype=np.int64)
    if out == 0:   # an empty output (PyTorch allows it) takes no windows
        return starts
    if out > 1:
        alpha = dtype(size - kernel) / dtype(out - 1)
        i = np.arange(out - 1).astype(samples.dtype)
        with np.errstate(over="ignore"):
            moved = ((i[None, :] + samples[:, None]) * alpha).astype(np.int64)
            base = (samples * alpha).astype(np.int64)
        starts[:, :-1] = moved - base[:, None]
    starts[:, -1] = size - kernel
    return starts


def fractional_window(in_size: Ints, out_size: Ints, kernel: Ints,
                      samples: np.ndarray) -> Window:
    """Windows of fixed size whose starts follow PyTorch's fractional interval sequence.

    ``samples`` has shape (planes, rank); as in PyTorch, entry 0 drives the last spatial
    dim for 2-D pooling, and entries follow the dims in order for 3-D pooling.
    """
    rank = len(in_size)
    order = [1, 0] if rank == 2 else list(range(rank))
    axes = []
    for dim, (size, out, k) in enumerate(zip(in_size, out_size, kernel)):
        first = fractional_intervals(samples[:, order[dim]], size, out, k)
        axes.append(_axis(first, np.full_like(first, k), 1, np.zeros(out), np.full(out, k), k))
    ones = (1,) * rank
    return Window(tuple(in_size), tuple(out_size), tuple(kernel), None, ones,
                  (0,) * rank, (0,) * rank, tuple(axes))


# ------------------------------------------------------------------ parts of a Window
# A Dask array is pooled block by block: each block computes some of the windows from
# the input cells they reach. The functions below cut a Window into such parts, per dim,
# from the same tables the backends read, so a part's windows are the whole Window's
# windows, tap for tap, divisor for divisor: only their positions are shifted.

@dataclass(frozen=True)
class Span:
    """Windows ``[out_lo, out_hi)`` of one dim, reading input cells ``[in_lo, in_hi)``."""

    out_lo: int
    out_hi: int
    in_lo: int
    in_hi: int


def reach(axis: Axis) -> Tuple[np.ndarray, np.ndarray]:
    """Per window, the first input cell any plane's window reads and one past its last."""
    lo = axis.first.min(axis=0)
    hi = (axis.first + np.maximum(axis.count - 1, 0) * axis.step).max(axis=0) + 1
    if axis.count.min() < 1:   # max_unpool's windows may lie wholly past the end
        lo, hi = np.minimum(lo, axis.size - 1), np.minimum(hi, axis.size)
    # windows of every kind here start in order; keep the hull monotone all the same
    return np.minimum.accumulate(lo[::-1])[::-1], np.maximum.accumulate(hi)


def output_spans(axis: Axis, in_bounds: Sequence[int]) -> Tuple[Span, ...]:
    """Cut the windows where the input is cut (``in_bounds``: 0, the chunk ends, ..., n):
    a window belongs to the part of the input chunk its first cell lies in, so along a
    sliding dim the parts start at multiples of the stride. Each span reads its windows'
    whole reach (the halo of the next chunk). Parts with no window are dropped."""
    lo, hi = reach(axis)
    cuts = sorted(set(int(c) for c in np.searchsorted(lo, np.asarray(in_bounds), "left")))
    cuts = [0] + [c for c in cuts if 0 < c < axis.out] + [axis.out]
    return tuple(Span(a, b, int(lo[a]), int(hi[a:b].max()))
                 for a, b in zip(cuts[:-1], cuts[1:]))


def input_spans(axis: Axis, in_bounds: Sequence[int]) -> Tuple[Span, ...]:
    """For each input chunk ``[a, b)``, the windows that read any cell of it and the cells
    those windows read (the chunk included): what a backward pass needs to give the
    chunk every contribution it gets. A chunk no window reads keeps one neighbouring
    window, whose contributions all fall outside it."""
    lo, hi = reach(axis)
    spans = []
    for a, b in zip(in_bounds[:-1], in_bounds[1:]):
        o0 = int(np.searchsorted(hi, a, "right"))   # first window ending after a
        o1 = int(np.searchsorted(lo, b, "left"))    # windows starting before b
        if o0 >= o1:
            o0 = min(o0, axis.out - 1)
            o1 = o0 + 1
        spans.append(Span(o0, o1, min(int(a), int(lo[o0])), max(int(b), int(hi[o0:o1].max()))))
    return tuple(spans)


def part_axis(axis: Axis, span: Span, rows=None) -> Axis:
    """The windows of ``span`` with positions relative to its first input cell; ``rows``
    picks the planes of per-plane (fractional) tables."""
    pick = lambda table: table[rows] if rows is not None and table.shape[0] > 1 else table
    first = pick(axis.first)[:, span.out_lo:span.out_hi] - span.in_lo
    return Axis(first=np.ascontiguousarray(first),
                count=np.ascontiguousarray(pick(axis.count)[:, span.out_lo:span.out_hi]),
                step=axis.step,
                skip=np.ascontiguousarray(pick(axis.skip)[:, span.out_lo:span.out_hi]),
                divisor=np.ascontiguousarray(axis.divisor[span.out_lo:span.out_hi]),
                kernel=axis.kernel, stride=axis.stride, size=span.in_hi - span.in_lo)


def part(window: Window, spans: Sequence[Span], rows=None) -> Window:
    """The Window of one block: the windows of ``spans`` (one per dim) over the input
    cells they name."""
    axes = tuple(part_axis(a, s, rows) for a, s in zip(window.axes, spans))
    return Window(tuple(s.in_hi - s.in_lo for s in spans), tuple(a.out for a in axes),
                  window.kernel, window.stride, window.dilation, window.pad_lo,
                  window.pad_hi, axes)
