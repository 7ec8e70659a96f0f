"""Time ndpool against PyTorch and against the memory-bandwidth bound.

Every config is timed forward and backward (the pullback of ``ndpool.vjp``, alone), at
each thread count and in each layout, as medians of interleaved repeats after a
warm-up. The bound is ``bytes that must move / memory bandwidth``, the bandwidth
measured in the same run with a large ``np.copyto``. A second table times what
scientists run (one big image, one big volume) against SciPy, scikit-image and NumPy
too (``--science``), and the naive four-loop max pooling gives the "before" (``--naive``).
Prints Markdown and writes it to benchmarks/RESULTS.md (``--output``); ``--plot
FILE.png`` draws the ratios. Quick look: ``ndpool bench --scale 0.05 --threads 1``.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import gc
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

INDEX_BYTES = 1   # the core keeps winners as 1-byte kernel offsets (windows up to 256 cells)
TARGET_SECONDS = 0.4     # auto repeats: each measurement (both libraries) takes about this
WARM_SECONDS = 0.03      # untimed calls that open every timed block
MAX_REPEATS = 50
LAYOUTS = ("channels_first", "channels_last")
PASSES = ("forward", "backward")
SIMD_LEVELS = ("baseline", "avx2", "avx512", "neon")   # what NDPOOL_SIMD accepts
SCIENCE = ("all", "none", "image", "volume")
# A call this long ramps the CPU up by itself, and timing it seven times (first call,
# three warm-ups, three repeats) would take the science table past a minute: such calls
# get at most LONG_CALLS calls in all, fewer where they would pass LONG_CALL_BUDGET.
LONG_CALL_SECONDS = 0.1
LONG_CALLS = 3
LONG_CALL_BUDGET = 2.0


# ------------------------------------------------------------------------ configs
@dataclass(frozen=True)
class Config:
    """One benchmark: an input shape (N, C, *spatial) and the same op in both libraries."""
    name: str
    title: str
    shape: Tuple[int, ...]
    op: str                      # ndpool op, called as op(x, *args)
    args: Tuple[int, ...]
    torch_op: str                # torch.nn.functional op, called as torch_op(x, *torch_args)
    torch_args: Tuple[int, ...]

    @property
    def keeps_indices(self) -> bool:
        return self.op.startswith("max")

    @property
    def has_layout(self) -> bool:
        """Whether the op takes ``layout=`` (global pools take a channels-last view)."""
        return not self.op.startswith("global")

    def scaled_shape(self, scale: float) -> Tuple[int, ...]:
        """The input shape with the batch multiplied by ``scale`` (at least 1).

        >>> CONFIGS["stem"].scaled_shape(0.1)
        (3, 64, 112, 112)
        >>> CONFIGS["spp"].scaled_shape(0.001)[0]
        1
        """
        return (max(1, round(self.shape[0] * scale)),) + self.shape[1:]


CONFIGS = {c.name: c for c in (
    Config("stem", "max k3 s2 p1", (32, 64, 112, 112), "max_pool2d", (3, 2, 1),
           "max_pool2d", (3, 2, 1)),
    Config("vgg_max", "max k2 s2", (16, 64, 224, 224), "max_pool2d", (2, 2),
           "max_pool2d", (2, 2)),
    Config("vgg_avg", "avg k2 s2", (16, 64, 224, 224), "avg_pool2d", (2, 2),
           "avg_pool2d", (2, 2)),
    Config("small_max", "max k2 s2", (64, 32, 32, 32), "max_pool2d", (2, 2),
           "max_pool2d", (2, 2)),
    Config("small_avg", "avg k2 s2", (64, 32, 32, 32), "avg_pool2d", (2, 2),
           "avg_pool2d", (2, 2)),
    Config("sppf", "max k5 s1 p2", (8, 256, 40, 40), "max_pool2d", (5, 1, 2),
           "max_pool2d", (5, 1, 2)),
    Config("spp", "max k13 s1 p6", (8, 256, 40, 40), "max_pool2d", (13, 1, 6),
           "max_pool2d", (13, 1, 6)),
    Config("global_avg", "global avg", (64, 512, 7, 7), "global_avg_pool", (),
           "adaptive_avg_pool2d", (1,)),
    Config("max3d", "3-D max k2 s2", (4, 32, 32, 32, 32), "max_pool3d", (2, 2),
           "max_pool3d", (2, 2)),
)}


# ---------------------------------------------------------------------- arguments
def _choices(kind: str, allowed: Sequence[str]) -> Callable[[str], Tuple[str, ...]]:
    def parse(text: str) -> Tuple[str, ...]:
        names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
        bad = [n for n in names if n not in allowed]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {kind} {', '.join(bad) or repr(text)}; choose from {', '.join(allowed)}")
        return names
    return parse


def _thread_counts(text: str) -> Tuple[int, ...]:
    try:
        counts = tuple(dict.fromkeys(int(n) for n in text.split(",")))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"--threads {text!r} must be positive ints like 1,2")
    return counts


def _positive(kind: type) -> Callable[[str], object]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be a positive {kind.__name__}")
        return value
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ndpool bench`` (and ``benchmarks/run.py``)."""
    default_threads = ",".join(str(n) for n in sorted({1, os.cpu_count() or 1}))
    parser.add_argument("--configs", type=_choices("config", tuple(CONFIGS)),
                        default=tuple(CONFIGS), metavar="NAME,...",
                        help=f"configs to run (default: all of {', '.join(CONFIGS)})")
    parser.add_argument("--threads", type=_thread_counts, default=_thread_counts(default_threads),
                        metavar="N,...", help=f"thread counts, the same for ndpool and "
                        f"PyTorch (default: {default_threads})")
    parser.add_argument("--layouts", type=_choices("layout", LAYOUTS), default=LAYOUTS,
                        metavar="LAYOUT,...", help="channels_first and/or channels_last")
    parser.add_argument("--passes", type=_choices("pass", PASSES), default=PASSES,
                        metavar="PASS,...", help="forward and/or backward")
    parser.add_argument("--scale", type=_positive(float), default=1.0,
                        help="multiply every batch size by this (at least 1), e.g. 0.05; "
                        "the science image's side by its square root, the volume's by its "
                        "cube root (at least 16); the naive loop's batch and channels")
    parser.add_argument("--repeats", type=_positive(int), default=None,
                        help="timed repeats per measurement (default: enough for about "
                        f"{TARGET_SECONDS} s, at least 3)")
    parser.add_argument("--backend", choices=("compiled", "reference"), default=None,
                        help="ndpool backend (default: compiled when built, else reference)")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/RESULTS.md"),
                        help="Markdown file to write (default: %(default)s)")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                        help="also draw the ratios as a bar chart (needs ndpool[plot])")
    parser.add_argument("--bandwidth-mb", type=_positive(int), default=256,
                        help="size of the np.copyto that measures the bandwidth (MB)")
    parser.add_argument("--science", choices=SCIENCE, default="all",
                        help="the second table: one 2048x2048 image (max/min/avg, k 3 to 63, "
                        "against scipy.ndimage) and one 512^3 volume (2x2x2 max/mean, "
                        "against skimage and NumPy); default: %(default)s")
    parser.add_argument("--naive", action=argparse.BooleanOptionalAction, default=True,
                        help="time the naive four-loop max pooling too (default: on)")
    parser.add_argument("--simd", choices=SIMD_LEVELS, default=None, metavar="LEVEL",
                        help="SIMD level of the compiled core, one of "
                        f"{', '.join(SIMD_LEVELS)}; another than the one in use re-runs the "
                        "benchmark in a fresh process with NDPOOL_SIMD=LEVEL")


# ------------------------------------------------------------------------ timing
def time_interleaved(functions: Sequence[Callable[[], object]],
                     repeats: Optional[int],
                     long_call: Optional[float] = None) -> List[float]:
    """Median seconds per call of each function, timed in alternating blocks.

    Alternating spreads the drift of a shared machine over every function alike. Each
    block opens with untimed calls for at least ``WARM_SECONDS``: on these machines the
    first few milliseconds of work after any pause or after the other library's calls
    run up to 2x slow (the virtual CPUs ramp up), which would otherwise land in whichever
    library's timings come first. Without ``repeats``, each function gets enough calls
    for about ``TARGET_SECONDS / len(functions)`` of its own time (3 to ``MAX_REPEATS``),
    so a fast call is not timed only three times because the other one is slow.

    With ``long_call`` (seconds) and no ``repeats``, a function whose first call took at
    least that long is timed on its own afterwards: ``LONG_CALLS`` calls in all, the first
    one counted and no warm-up (a call that long ramps the CPU up by itself), fewer where
    they would pass ``LONG_CALL_BUDGET`` seconds.

    >>> [t >= 0 for t in time_interleaved([lambda: None, lambda: 1], repeats=2)]
    [True, True]
    >>> [t >= 0 for t in time_interleaved([lambda: time.sleep(0.02)], None, long_call=0.01)]
    [True]
    """
    firsts = [_seconds(function) for function in functions]
    long_ones = [i for i, took in enumerate(firsts)
                 if long_call is not None and not repeats and took >= long_call]
    short = [i for i in range(len(functions)) if i not in long_ones]
    medians = dict(zip(short, _alternate([functions[i] for i in short],
                                         [firsts[i] for i in short], repeats)))
    for i in long_ones:
        calls = max(1, min(LONG_CALLS, int(LONG_CALL_BUDGET / firsts[i])))
        medians[i] = statistics.median(
            [firsts[i]] + [_seconds(functions[i]) for _ in range(calls - 1)])
    return [medians[i] for i in range(len(functions))]


def _seconds(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _alternate(functions, firsts, repeats) -> List[float]:
    """The alternating blocks of ``time_interleaved``, sized from each first call."""
    if not functions:
        return []
    share = TARGET_SECONDS / len(functions)
    counts = [repeats or min(MAX_REPEATS, max(3, int(share / max(took, 1e-9))))
              for took in firsts]
    blocks = min(3, min(counts)) if len(functions) > 1 else 1
    seconds: List[List[float]] = [[] for _ in functions]
    for block in range(blocks):
        for function, count, times in zip(functions, counts, seconds):
            start = time.perf_counter()
            function()   # untimed warm-up: at least one call, at least WARM_SECONDS
            while time.perf_counter() - start < WARM_SECONDS:
                function()
            for _ in range(count // blocks + (block < count % blocks)):
                times.append(_seconds(function))
    return [statistics.median(times) for times in seconds]


def measure_bandwidth(threads: int, megabytes: int = 256, repeats: int = 5) -> float:
    """Memory bandwidth in bytes/s: a large ``np.copyto`` (read + write), median of repeats.

    With several threads each copies its own slice (NumPy releases the GIL while
    copying), so the bound at n threads uses the bandwidth n threads can draw.
    """
    source = np.ones(megabytes * 2**20 // 4, dtype=np.float32)
    target = np.zeros_like(source)
    parts = [(t, s) for t, s in zip(np.array_split(target, threads),
                                    np.array_split(source, threads))]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        def copy():
            list(pool.map(lambda pair: np.copyto(*pair), parts))
        (seconds,) = time_interleaved([copy], repeats)
    return 2 * source.nbytes / seconds


def usable_bandwidth(measured: dict, threads: int) -> float:
    """The best bandwidth measured with at most ``threads`` threads: on a shared machine
    more copying threads can draw less, and the bound must not get easier for that.

    >>> usable_bandwidth({1: 20e9, 2: 14e9}, 2) == 20e9
    True
    """
    return max(b for n, b in measured.items() if n <= threads)


# --------------------------------------------------------------- one config, one layout
@dataclass
class Case:
    """The prepared calls of one config in one layout, and the bytes each pass must move."""
    forward: Callable[[], object]
    backward: Callable[[], object]
    torch_forward: Optional[Callable[[], object]]
    torch_backward: Optional[Callable[[], object]]
    bytes_forward: int
    bytes_backward: int


def _channels_last(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


def prepare(config: Config, layout: str, scale: float, torch, rng) -> Case:
    """Inputs, gradients and graphs for ``config`` in ``layout``; nothing is timed here."""
    import ndpool

    x = rng.standard_normal(config.scaled_shape(scale), dtype=np.float32)
    last = layout == "channels_last"
    if last:
        x = _channels_last(x)
    op = getattr(ndpool, config.op)
    if config.has_layout:
        kwargs = {"layout": layout}
        x_ours = x
    else:   # global pools take (N, C, *spatial): give them the channels-last view
        kwargs, x_ours = {}, (np.moveaxis(x, -1, 1) if last else x)
    y, pullback = ndpool.vjp(op, x_ours, *config.args, **kwargs)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    indices = y.size * INDEX_BYTES if config.keeps_indices else 0
    case = Case(forward=lambda: op(x_ours, *config.args, **kwargs),
                backward=lambda: pullback(dy), torch_forward=None, torch_backward=None,
                bytes_forward=x.nbytes + y.nbytes,
                bytes_backward=dy.nbytes + indices + x.nbytes)
    if torch is not None:
        case.torch_forward, case.torch_backward = _torch_calls(config, x, last, torch)
    return case


def _torch_calls(config: Config, x: np.ndarray, last: bool, torch):
    """PyTorch's forward and autograd backward on the same memory (a channels_last
    tensor when ``last``); backward re-runs ``torch.autograd.grad`` on a kept graph."""
    op = getattr(torch.nn.functional, config.torch_op)
    tensor = torch.from_numpy(x)
    if last:   # (N, *spatial, C) memory seen as a channels_last (N, C, *spatial) tensor
        tensor = tensor.permute(0, x.ndim - 1, *range(1, x.ndim - 1))
    leaf = tensor.detach().requires_grad_(True)
    y = op(leaf, *config.torch_args)
    dy = torch.randn_like(y)   # keeps y's memory format

    def forward():
        with torch.no_grad():
            return op(tensor, *config.torch_args)

    return forward, lambda: torch.autograd.grad(y, leaf, dy, retain_graph=True)


# --------------------------------------------------------------------- the run
def _ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    return None if numerator is None or denominator is None else numerator / denominator


@dataclass
class Row:
    config: str
    title: str
    shape: Tuple[int, ...]
    pass_: str
    layout: str
    threads: int
    ndpool_s: float
    torch_s: Optional[float]
    bound_s: float
    torch_best_s: Optional[float] = None   # set by fill_torch_best

    @property
    def key(self) -> tuple:
        """What stays the same across the thread counts of one measurement."""
        return (self.config, self.pass_, self.layout)

    @property
    def label(self) -> str:
        return f"{self.config} {self.pass_} {self.layout}"

    @property
    def vs_torch(self) -> Optional[float]:
        return _ratio(self.ndpool_s, self.torch_s)

    @property
    def vs_torch_best(self) -> Optional[float]:
        return _ratio(self.ndpool_s, self.torch_best_s)

    @property
    def vs_bound(self) -> float:
        return self.ndpool_s / self.bound_s

    @property
    def torch_vs_bound(self) -> Optional[float]:
        return _ratio(self.torch_s, self.bound_s)


def _threads_word(n: int) -> str:
    return f"{n} thread{'s' * (n > 1)}"


def fill_torch_best(rows) -> None:
    """Set each row's ``torch_best_s``: PyTorch's best median at any thread count up to
    the row's, same key. Its OpenMP threads can take milliseconds to wake on these 2-vCPU
    VMs; a user who sees that runs it with fewer threads, so the fair peer is the best.

    >>> rows = [Row("c", "t", (1,), "forward", "l", n, 1.0, seconds, 1.0)
    ...         for n, seconds in ((1, 2.0), (2, 3.0))]
    >>> fill_torch_best(rows); [r.torch_best_s for r in rows]
    [2.0, 2.0]
    """
    for row in rows:
        measured = [r.torch_s for r in rows if r.key == row.key and r.threads <= row.threads
                    and r.torch_s is not None]
        row.torch_best_s = min(measured, default=None)


@dataclass
class Report:
    rows: List[Row]
    bandwidth: dict            # threads -> bytes/s
    backend: str
    torch_version: Optional[str]
    options: argparse.Namespace
    load: Tuple[float, float] = (math.nan, math.nan)   # 1-minute load, start and end
    science: List["ScienceRow"] = field(default_factory=list)
    naive: Optional["NaiveResult"] = None
    simd: dict = field(default_factory=dict)           # simd_config() of this process


def import_torch():
    """PyTorch, or ``None`` (with a note on stderr) when it is not installed."""
    try:
        import torch
    except ImportError:
        print("ndpool bench: PyTorch is not installed; skipped its timings, the PyTorch "
              "columns stay empty (pip install 'ndpool[torch]')", file=sys.stderr)
        return None
    return torch


class _PlainProgress:
    """Progress lines on stderr, for when tqdm is not installed."""

    def __init__(self, total: int):
        self.total, self.done, self.text = total, 0, ""

    def set_description(self, text: str) -> None:
        self.text = text

    def update(self, count: int = 1) -> None:
        self.done += count
        print(f"[{self.done}/{self.total}] {self.text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def _progress(total: int):
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainProgress(total)
    return tqdm(total=total, unit="measurement", file=sys.stderr, dynamic_ncols=True)


def _set_threads(n: int, torch) -> None:
    import ndpool
    ndpool.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def collect(options: argparse.Namespace, torch) -> Report:
    """Measure the bandwidth, then every selected config, the science cases and the naive
    loop; restores the thread counts."""
    import ndpool
    before = (ndpool.get_num_threads(), torch.get_num_threads() if torch else None)
    load_start = _load_average()
    bandwidth = {n: measure_bandwidth(n, options.bandwidth_mb)
                 for n in sorted({1, *options.threads})}
    total = len(options.configs) * len(options.layouts) * len(options.passes) * len(
        options.threads) + science_count(options) + 2 * options.naive
    progress, rows = _progress(total), []
    rng = np.random.default_rng(0)
    report = Report(rows, bandwidth, options.backend, torch.__version__ if torch else None,
                    options, simd=simd_config())
    try:
        for name in options.configs:
            for layout in options.layouts:
                rows += _measure_case(CONFIGS[name], layout, options, torch, bandwidth,
                                      rng, progress)
                gc.collect()   # the largest configs hold ~1 GB between them
        fill_torch_best(rows)
        report.science = collect_science(options, torch, bandwidth, rng, progress)
        if options.naive:
            report.naive = measure_naive(options, rng, progress)
    finally:
        progress.close()
        ndpool.set_num_threads(before[0])
        if torch is not None:
            torch.set_num_threads(before[1])
    report.load = (load_start, _load_average())
    return report


def _load_average() -> float:
    """The 1-minute load: other work on the machine shows up first in multi-thread rows."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return math.nan


def _measure_case(config, layout, options, torch, bandwidth, rng, progress) -> List[Row]:
    case = prepare(config, layout, options.scale, torch, rng)
    rows = []
    for pass_ in options.passes:
        ours = case.forward if pass_ == "forward" else case.backward
        theirs = case.torch_forward if pass_ == "forward" else case.torch_backward
        moved = case.bytes_forward if pass_ == "forward" else case.bytes_backward
        for threads in options.threads:
            progress.set_description(f"{config.name} {pass_} {layout} {threads}t")
            _set_threads(threads, torch)
            times = time_interleaved([ours] + ([theirs] if theirs else []), options.repeats)
            rows.append(Row(config.name, config.title, config.scaled_shape(options.scale),
                            pass_, layout, threads, times[0],
                            times[1] if theirs else None,
                            moved / usable_bandwidth(bandwidth, threads)))
            progress.update(1)
    return rows


# ------------------------------------------------------------ one image, one volume
IMAGE_SIDE = 2048
IMAGE_WINDOWS = (3, 5, 9, 15, 31, 63)
IMAGE_OPS = ("max", "min", "avg")
VOLUME_SIDE = 512
# PyTorch's stride-1 pools visit all k*k taps of every window (no running max): past
# this many taps one call takes seconds (k=63 on 2048x2048: about 15 s on a 2-vCPU VM)
# and would take the science table far past its minute, so those rows are not timed.
TORCH_MAX_TAPS = 5e8


def science_side(full: int, scale: float, dims: int) -> int:
    """The side of the science image (``dims=2``) or volume (3) at ``scale``: the pixel
    count follows the scale, the side is even (2x2x2 blocks) and at least 16.

    >>> science_side(2048, 1.0, 2), science_side(2048, 0.05, 2), science_side(512, 1e-6, 3)
    (2048, 458, 16)
    """
    return max(16, 2 * round(full * scale ** (1 / dims) / 2))


@dataclass
class ScienceCase:
    """One forward op on the shared image or volume: ndpool's call, PyTorch's (None when
    not installed or not timed) and the single-threaded peers', by name."""
    config: str
    title: str
    ours: Callable[[], object]
    torch_call: Optional[Callable[[], object]]
    peers: Dict[str, Callable[[], object]]
    bytes_moved: int


def image_cases(scale: float, torch, rng) -> List[ScienceCase]:
    """max / min / avg with ``padding="same"`` at every window of ``IMAGE_WINDOWS``."""
    import ndpool
    side = science_side(IMAGE_SIDE, scale, 2)
    image = rng.random((side, side), dtype=np.float32)
    x = image[None, None]
    tensor = torch.from_numpy(x) if torch is not None else None
    cases = []
    for k in IMAGE_WINDOWS:
        for op in IMAGE_OPS:
            ours = partial(getattr(ndpool, f"{op}_pool2d"), x, k, 1, padding="same")
            timed = tensor is not None and k * k * image.size <= TORCH_MAX_TAPS
            cases.append(ScienceCase(
                f"image {side}×{side}", f"{op} k{k} s1 same", ours,
                partial(_torch_image_pool, torch, tensor, op, k) if timed else None,
                _scipy_filters(image, op, k), 2 * image.nbytes))
    return cases


def _torch_image_pool(torch, tensor, op: str, k: int):
    """PyTorch's same-size pooling for odd ``k``: padding k // 2, padded cells never win
    (max pads with -inf) and never count (``count_include_pad=False``), as ndpool's."""
    pool = torch.nn.functional
    if op == "max":
        return pool.max_pool2d(tensor, k, 1, k // 2)
    if op == "min":
        return -pool.max_pool2d(-tensor, k, 1, k // 2)
    return pool.avg_pool2d(tensor, k, 1, k // 2, count_include_pad=False)


def _scipy_filters(image: np.ndarray, op: str, k: int) -> Dict[str, Callable[[], object]]:
    try:
        from scipy import ndimage
    except ImportError:
        return {}
    function = {"max": ndimage.maximum_filter, "min": ndimage.minimum_filter,
                "avg": ndimage.uniform_filter}[op]
    return {f"scipy {function.__name__}": partial(function, image, size=k)}


def volume_cases(scale: float, torch, rng) -> List[ScienceCase]:
    """2x2x2 max and mean of one volume (a typical downsampling step)."""
    import ndpool
    side = science_side(VOLUME_SIDE, scale, 3)
    volume = rng.random((side,) * 3, dtype=np.float32)
    x = volume[None, None]
    half = side // 2
    blocks = volume.reshape(half, 2, half, 2, half, 2)   # a view: no copy is timed
    cases = []
    for op, ours, reduce, torch_op in (("max", ndpool.max_pool3d, np.max, "max_pool3d"),
                                       ("mean", ndpool.avg_pool3d, np.mean, "avg_pool3d")):
        peers = _skimage_block_reduce(volume, reduce)
        peers["NumPy reshape"] = partial(reduce, blocks, axis=(1, 3, 5))
        torch_call = None if torch is None else partial(
            getattr(torch.nn.functional, torch_op), torch.from_numpy(x), 2)
        cases.append(ScienceCase(f"volume {side}³", f"{op} 2×2×2", partial(ours, x, 2),
                                 torch_call, peers, volume.nbytes * 9 // 8))
    return cases


def _skimage_block_reduce(volume: np.ndarray, reduce) -> Dict[str, Callable[[], object]]:
    try:
        from skimage.measure import block_reduce
    except ImportError:
        return {}
    return {"skimage block_reduce": partial(block_reduce, volume, (2, 2, 2), reduce)}


SCIENCE_GROUPS = {"image": image_cases, "volume": volume_cases}


def science_groups(choice: str) -> List[str]:
    """The science groups ``--science`` selects.

    >>> science_groups("all"), science_groups("volume"), science_groups("none")
    (['image', 'volume'], ['volume'], [])
    """
    return {"all": list(SCIENCE_GROUPS), "none": []}.get(choice, [choice])


@dataclass
class ScienceRow:
    config: str
    title: str
    threads: int
    ndpool_s: float
    torch_s: Optional[float]
    peer: str
    peer_s: Optional[float]
    bound_s: float
    torch_best_s: Optional[float] = None       # set by fill_torch_best
    single_thread_s: Optional[float] = None    # ndpool at 1 thread: fill_single_thread

    @property
    def key(self) -> tuple:
        return (self.config, self.title, self.peer)

    @property
    def label(self) -> str:
        return f"{self.config} {self.title}"

    @property
    def vs_torch_best(self) -> Optional[float]:
        return _ratio(self.ndpool_s, self.torch_best_s)

    @property
    def vs_peer(self) -> Optional[float]:
        return _ratio(self.ndpool_s, self.peer_s)

    @property
    def vs_bound(self) -> float:
        return self.ndpool_s / self.bound_s

    @property
    def vs_single_thread(self) -> Optional[float]:
        return _ratio(self.ndpool_s, self.single_thread_s) if self.threads > 1 else None


def fill_single_thread(rows: Sequence[ScienceRow]) -> None:
    """Give each row ndpool's 1-thread time of the same case (None without that row)."""
    single = {r.key: r.ndpool_s for r in rows if r.threads == 1}
    for row in rows:
        row.single_thread_s = single.get(row.key)


def collect_science(options, torch, bandwidth, rng, progress) -> List[ScienceRow]:
    """Every selected science case at every thread count; one group's array at a time."""
    rows: List[ScienceRow] = []
    for group in science_groups(options.science):
        cases = SCIENCE_GROUPS[group](options.scale, torch, rng)
        for case in cases:
            rows += _measure_science(case, options, torch, bandwidth, progress)
        del cases
        gc.collect()   # the volume alone is 512 MiB at scale 1
    fill_torch_best(rows)
    fill_single_thread(rows)
    return rows


def _measure_science(case, options, torch, bandwidth, progress) -> List[ScienceRow]:
    rows, peer_seconds = [], None
    for threads in options.threads:
        progress.set_description(f"{case.config} {case.title} {threads}t")
        _set_threads(threads, torch)
        functions = [case.ours] + ([case.torch_call] if case.torch_call else [])
        if peer_seconds is None:   # single-threaded peers: timed once, at the first count
            functions += list(case.peers.values())
        times = time_interleaved(functions, options.repeats, long_call=LONG_CALL_SECONDS)
        torch_s = times[1] if case.torch_call else None
        if peer_seconds is None:
            peer_seconds = dict(zip(case.peers, times[1 + bool(case.torch_call):]))
        bound = case.bytes_moved / usable_bandwidth(bandwidth, threads)
        rows += [ScienceRow(case.config, case.title, threads, times[0], torch_s, peer,
                            seconds, bound)
                 for peer, seconds in (peer_seconds.items() or [("", None)])]
        progress.update(1)
    return rows


def science_count(options) -> int:
    """How many measurements the science table takes (for the progress bar)."""
    per_group = {"image": len(IMAGE_WINDOWS) * len(IMAGE_OPS), "volume": 2}
    return sum(per_group[g] for g in science_groups(options.science)) * len(options.threads)


# ------------------------------------------------------------------ the naive loop
NAIVE_SHAPE = (2, 16, 64, 64)   # about a second of pure-Python loops, repeats included
NAIVE_KERNEL = 2


def naive_shape(scale: float) -> Tuple[int, ...]:
    """The naive loop's input at ``scale``: batch and channels scaled (at least 1).

    >>> naive_shape(1.0), naive_shape(0.01)
    ((2, 16, 64, 64), (1, 1, 64, 64))
    """
    batch, channels, *spatial = NAIVE_SHAPE
    return (max(1, round(batch * scale)), max(1, round(channels * scale)), *spatial)


@dataclass
class NaiveResult:
    """Seconds per call of the naive loop and of ndpool (1 thread), by pass."""
    shape: Tuple[int, ...]
    naive_s: Dict[str, float]
    ndpool_s: Dict[str, float]

    def speedup(self, pass_: str) -> float:
        return self.naive_s[pass_] / self.ndpool_s[pass_]


def measure_naive(options, rng, progress) -> NaiveResult:
    """Check the naive loop against ndpool on tie-free input, then time both at 1 thread
    (the loop is single-threaded)."""
    import ndpool
    from ._naive import naive_max_pool2d, naive_max_pool2d_backward

    shape, k = naive_shape(options.scale), NAIVE_KERNEL
    # distinct values: the winner of every window is unique, whatever the tie rule
    x = rng.permutation(math.prod(shape)).astype(np.float32).reshape(shape)
    y, pullback = ndpool.vjp(ndpool.max_pool2d, x, k, k)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    check_naive(x, dy, y, pullback(dy), options.backend)
    ndpool.set_num_threads(1)
    calls = {"forward": (partial(naive_max_pool2d, x, k, k),
                         partial(ndpool.max_pool2d, x, k, k)),
             "backward": (partial(naive_max_pool2d_backward, x, dy, k, k),
                          partial(pullback, dy))}
    result = NaiveResult(shape, {}, {})
    for pass_, functions in calls.items():
        progress.set_description(f"naive loop {pass_}")
        result.naive_s[pass_], result.ndpool_s[pass_] = time_interleaved(
            functions, options.repeats, long_call=LONG_CALL_SECONDS)
        progress.update(1)
    return result


def check_naive(x, dy, y, dx, backend: str) -> None:
    """Raise unless ndpool's ``y`` and ``dx`` equal the naive loop's: a speed-up between
    different answers would mean nothing."""
    from numpy.testing import assert_allclose, assert_array_equal
    from ._naive import naive_max_pool2d, naive_max_pool2d_backward

    k = NAIVE_KERNEL
    checks = (("forward", assert_array_equal, y, naive_max_pool2d(x, k, k)),
              # allclose: overlapping windows would add dy in another order
              ("backward", partial(assert_allclose, rtol=1e-6, atol=1e-6), dx,
               naive_max_pool2d_backward(x, dy, k, k)))
    for pass_, check, ours, theirs in checks:
        try:
            check(ours, theirs)
        except AssertionError as error:
            raise RuntimeError(
                f"ndpool bench: ndpool.max_pool2d ({pass_}, backend {backend}) differs from "
                f"the naive four-loop max pooling on an input of shape {x.shape}, "
                f"k{k} s{k}:{error}") from error


def naive_lines(result: NaiveResult, backend: str) -> List[str]:
    """The RESULTS.md section on the naive loop."""
    n, c, h, w = result.shape
    forward, backward = result.speedup("forward"), result.speedup("backward")
    return [
        "## The textbook's naive loop", "",
        f"ndpool is {_number(forward)}× faster than the naive four-loop max pooling "
        f"(forward), {_number(backward)}× (backward).", "",
        f"Input ({n}, {c}, {h}, {w}) float32 of distinct values, k{NAIVE_KERNEL} "
        f"s{NAIVE_KERNEL}. The loop (`ndpool._naive`) runs `for n, for c, for i, for j` "
        "taking `x[n, c, i*s:i*s+k, j*s:j*s+k].max()`; its backward adds dy at each "
        "window's `argmax`. Both were checked equal to ndpool's before timing. Naive: "
        f"{_number(result.naive_s['forward'], 1e3)} ms forward, "
        f"{_number(result.naive_s['backward'], 1e3)} ms backward; ndpool (1 thread, backend "
        f"`{backend}`): {_number(result.ndpool_s['forward'], 1e3)} ms, "
        f"{_number(result.ndpool_s['backward'], 1e3)} ms.", ""]


# --------------------------------------------------------------------- the table
COLUMNS = ("config", "op", "pass", "layout", "threads", "ndpool ms", "PyTorch ms",
           "PyTorch best ms", "bound ms", "ndpool/PyTorch", "ndpool/PyTorch best",
           "ndpool/bound", "PyTorch/bound")


def _number(value: Optional[float], scale: float = 1.0) -> str:
    if value is None:
        return ""
    value *= scale
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def markdown_table(columns: Sequence[str], aligns: str,
                   cells: Sequence[Sequence[str]]) -> List[str]:
    """A Markdown table; ``aligns`` holds one ``l`` or ``r`` per column.

    >>> markdown_table(("a", "b"), "lr", [("x", "1")])
    ['| a | b |', '|---|---:|', '| x | 1 |']
    """
    rule = "|" + "".join("---:|" if a == "r" else "---|" for a in aligns)
    return ["| " + " | ".join(columns) + " |", rule] + [
        "| " + " | ".join(row) + " |" for row in cells]


def table_lines(rows: Sequence[Row]) -> List[str]:
    """The Markdown results table, one line per row after the two header lines."""
    return markdown_table(COLUMNS, "llll" + "r" * 9, [
        (r.config, r.title, r.pass_, r.layout, str(r.threads),
         _number(r.ndpool_s, 1e3), _number(r.torch_s, 1e3), _number(r.torch_best_s, 1e3),
         _number(r.bound_s, 1e3), _number(r.vs_torch), _number(r.vs_torch_best),
         _number(r.vs_bound), _number(r.torch_vs_bound)) for r in rows])


SCIENCE_COLUMNS = ("config", "op", "threads", "ndpool ms", "PyTorch ms", "PyTorch best ms",
                   "peer name", "peer ms", "bound ms", "ndpool/PyTorch best", "ndpool/peer",
                   "ndpool/bound", "vs 1 thread")


def science_table_lines(rows: Sequence[ScienceRow]) -> List[str]:
    """The Markdown science table, one line per (case, thread count, peer)."""
    return markdown_table(SCIENCE_COLUMNS, "llrrrrlrrrrrr", [
        (r.config, r.title, str(r.threads), _number(r.ndpool_s, 1e3),
         _number(r.torch_s, 1e3), _number(r.torch_best_s, 1e3), r.peer,
         _number(r.peer_s, 1e3), _number(r.bound_s, 1e3), _number(r.vs_torch_best),
         _number(r.vs_peer), _number(r.vs_bound), _number(r.vs_single_thread))
        for r in rows])


def science_lines(report: Report) -> List[str]:
    """The "one image, one volume" section: what was run, the table, how to read it."""
    rows = report.science
    if not rows:
        return []
    scale = report.options.scale
    image, volume = science_side(IMAGE_SIDE, scale, 2), science_side(VOLUME_SIDE, scale, 3)
    image_mb, volume_mb = _number(image ** 2 * 4 / 1e6), _number(volume ** 3 * 4 / 1e6)
    intro = (f"What scientists run: one {image}×{image} image, given to ndpool as (1, 1, "
             f"{image}, {image}) ({image_mb} MB), and one {volume}³ volume as (1, 1, "
             f"{volume}, {volume}, {volume}) ({volume_mb} MB); float32, forward only, at "
             "each thread count.")
    return (["## One image, one volume", "", intro, ""] + science_table_lines(rows) + [""]
            + _science_summary(rows) + ["", _science_note(report), ""])


def _science_summary(rows: Sequence[ScienceRow]) -> List[str]:
    # one ndpool measurement per (case, threads), whatever the number of peers
    unique = list({(r.config, r.title, r.threads): r for r in rows}.values())
    parts = [f"ndpool/bound {_number(_geometric_mean([r.vs_bound for r in unique]))}"]
    for name, values in (("ndpool/PyTorch best", [r.vs_torch_best for r in unique]),
                         ("ndpool/peer", [r.vs_peer for r in rows])):
        mean = _geometric_mean(values)
        if mean is not None:
            parts.append(f"{name} {_number(mean)}")
    lines = ["Geometric means over the table: " + ", ".join(parts) + "."]
    for name, ratio, pool in (("ndpool/PyTorch best", "vs_torch_best", unique),
                              ("ndpool/peer", "vs_peer", rows)):
        worst = _worst(pool, ratio)
        if worst is not None:
            peer = f" vs {worst.peer}" if ratio == "vs_peer" else ""
            lines.append(f"Worst {name}: {_number(getattr(worst, ratio))} ({worst.label}"
                         f"{peer}, {_threads_word(worst.threads)}).")
    for n, worst in _worst_per_threads(unique, "vs_single_thread"):
        mean = _geometric_mean([r.vs_single_thread for r in unique if r.threads == n])
        lines.append(f"ndpool at {n} threads / at 1 thread: geometric mean {_number(mean)}, "
                     f"worst {_number(worst.vs_single_thread)} ({worst.label}); the target "
                     "at 2 threads is at most 0.6.")
    return lines


def _science_note(report: Report) -> str:
    rows, scale = report.science, report.options.scale
    image = science_side(IMAGE_SIDE, scale, 2)
    untimed = [k for k in IMAGE_WINDOWS if k * k * image * image > TORCH_MAX_TAPS]
    peers = {r.peer for r in rows}
    missing = [f"{name} is not installed (its rows have no peer)" for name, marker, group in
               (("SciPy", "scipy", "image"), ("scikit-image", "skimage", "volume"))
               if any(r.config.startswith(group) for r in rows)
               and not any(p.startswith(marker) for p in peers)]
    text = (
        "Image: ndpool gets `padding=\"same\"` (padded cells never win and never count); "
        "PyTorch gets padding k // 2 (the same size for odd k), `avg_pool2d` with "
        "`count_include_pad=False`, min as `-max_pool2d(-x)` (both negations timed): the "
        "same values. The peers `scipy.ndimage.maximum_filter` / `minimum_filter` / "
        "`uniform_filter` with `size=k` follow scipy's edge mode (`reflect`), not ndpool's "
        "padding rule, so their edge cells differ: a speed comparison, not a value check. ")
    if report.torch_version and untimed and any(r.config.startswith("image") for r in rows):
        text += (f"PyTorch is not timed for k = {', '.join(map(str, untimed))}: its stride-1 "
                 f"pools visit all k² taps of every window; past {TORCH_MAX_TAPS / 1e6:g} "
                 "million taps one call takes seconds. ")
    text += (
        "Volume: `skimage.measure.block_reduce(v, (2, 2, 2), np.max / np.mean)`, a NumPy "
        "reshape `v.reshape(D/2, 2, H/2, 2, W/2, 2).max(axis=(1, 3, 5))` (`.mean`), and "
        "PyTorch's `max_pool3d` / `avg_pool3d`. The peers are single-threaded: timed once, "
        "at the first thread count, their number repeated in later rows. vs 1 thread: "
        "ndpool's time at n threads / its time at 1 thread. bound = (input + output bytes) "
        f"/ bandwidth. A call of {LONG_CALL_SECONDS:g} s or more is timed alone by at most "
        f"{LONG_CALLS} calls in all, fewer past {LONG_CALL_BUDGET:g} s, without warm-up (a "
        "call that long warms the CPU up itself).")
    return text + "".join(f" {line}." for line in missing)


def _geometric_mean(values: Sequence[float]) -> Optional[float]:
    values = [v for v in values if v is not None]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _revision(source: Path | None = None) -> str:
    """`` (git abc1234, uncommitted changes)`` for a source checkout, else nothing: a
    results file must say which code it measured (``source``: this module's file)."""
    source = Path(__file__).resolve() if source is None else source
    here = source.parent
    try:
        # an installed copy may sit inside some other repository (a pyenv checkout, say):
        # only a checkout that tracks this very file names its commit
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", source.name],
                                 cwd=here, capture_output=True, text=True, timeout=10)
        if tracked.returncode != 0:
            return ""
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=here.parent,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    if not commit:
        return ""
    return f" (git {commit}{', uncommitted changes' if dirty else ''})"


def render(report: Report, command: str) -> str:
    """The whole Markdown document: the machine, the configs, the main table, the science
    table, the naive loop, and how to read each."""
    lines = _header_lines(report, command) + _main_lines(report) + science_lines(report)
    if report.naive is not None:
        lines += naive_lines(report.naive, report.backend)
    return "\n".join(lines)


def _header_lines(report: Report, command: str) -> List[str]:
    import ndpool
    o = report.options
    bandwidth = ", ".join(f"{_threads_word(n)}: {b / 1e9:.1f} GB/s"
                          for n, b in report.bandwidth.items())
    torch = f"PyTorch {report.torch_version}" if report.torch_version else (
        "PyTorch not installed (its columns are empty)")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        "# ndpool benchmark results", "",
        f"- CPU: {cpu_name()}, `os.cpu_count()` = {os.cpu_count()}",
        _simd_line(report.simd or simd_config()),
        f"- Python {platform.python_version()}, NumPy {np.__version__}, {torch}, "
        f"ndpool {ndpool.__version__}{_revision()}, backend `{report.backend}`",
        f"- threads: {', '.join(map(str, o.threads))} (`ndpool.set_num_threads` = "
        f"`torch.set_num_threads`)",
        f"- date: {when}; load average {report.load[0]:.2f} at the start, "
        f"{report.load[1]:.2f} at the end (this run adds up to its thread count; more means other work shared the CPU)",
        f"- memory bandwidth (`np.copyto` of {o.bandwidth_mb} MB split over the threads, "
        f"read + write, median of 5): {bandwidth}",
        f"- float32, batch scale {o.scale:g}, repeats "
        f"{o.repeats or 'auto'} (medians; blocks alternate with PyTorch's, each opened "
        f"by {WARM_SECONDS * 1e3:g} ms of untimed calls)",
        f"- command: `{command}`", ""]


def _main_lines(report: Report) -> List[str]:
    lines = ["| config | op | input (N, C, *spatial) | MB |", "|---|---|---|---:|"]
    for name in report.options.configs:
        c = CONFIGS[name]
        shape = c.scaled_shape(report.options.scale)
        lines.append(f"| {name} | {c.title} | {'×'.join(map(str, shape))} | "
                     f"{math.prod(shape) * 4 / 1e6:.1f} |")
    return lines + [""] + table_lines(report.rows) + [""] + _summary(report.rows) + [
        "", "Ratios below 1 mean ndpool is faster than PyTorch / closer to the bound. "
        "bound = bytes that must move / bandwidth at that thread count; forward moves "
        "input + output; backward moves dy + dx, plus the 1-byte argmax the core keeps for "
        "max pools; the "
        "bandwidth at n threads is the best measured with at most n. "
        "Inputs that fit in cache can beat the bound. PyTorch best: its best median at any "
        "thread count up to the row's (its OpenMP threads can take milliseconds to wake on "
        "small VMs, and a user would then run it with fewer). Backward is the pullback of "
        "`ndpool.vjp` (PyTorch: `torch.autograd.grad` on a kept graph), timed alone. "
        "channels_last: ndpool gets `layout=\"channels_last\"` on an (N, *spatial, C) "
        "array (`global_avg_pool`, which has no `layout`, gets its (N, C, *spatial) "
        "view); PyTorch gets a `channels_last` tensor over the same memory.", ""]


def _summary(rows: Sequence[Row]) -> List[str]:
    vs_torch = _geometric_mean([r.vs_torch for r in rows])
    vs_best = _geometric_mean([r.vs_torch_best for r in rows])
    vs_bound = _geometric_mean([r.vs_bound for r in rows])
    text = f"Geometric means over the table: ndpool/bound {_number(vs_bound)}"
    if vs_torch is not None:
        text += (f", ndpool/PyTorch {_number(vs_torch)}, "
                 f"ndpool/PyTorch best {_number(vs_best)}")
    lines = [text + "."]
    worst = _worst(rows, "vs_torch_best")
    if worst is not None:
        lines.append(f"Worst ndpool/PyTorch best: {_number(worst.vs_torch_best)} "
                     f"({worst.label}, {_threads_word(worst.threads)}).")
    lines.append("Worst ndpool/bound: " + "; ".join(
        f"{_threads_word(n)} {_number(w.vs_bound)} ({w.label})"
        for n, w in _worst_per_threads(rows, "vs_bound")) + ".")
    return lines


def _worst(rows, ratio: str):
    """The row with the largest ``ratio`` (an attribute), or None when none has one."""
    measured = [r for r in rows if getattr(r, ratio) is not None]
    return max(measured, key=lambda r: getattr(r, ratio), default=None)


def _worst_per_threads(rows, ratio: str):
    """(thread count, worst row) for each thread count, in the rows' order."""
    counts = dict.fromkeys(r.threads for r in rows)
    pairs = [(n, _worst([r for r in rows if r.threads == n], ratio)) for n in counts]
    return [(n, w) for n, w in pairs if w is not None]


# ---------------------------------------------------------------------- the plot
def plot(report: Report, path: Path) -> None:
    """Bar chart of ndpool/PyTorch and ndpool/bound per config, log scale, 1 marked."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise RuntimeError("ndpool bench --plot needs matplotlib: "
                           "pip install 'ndpool[plot]'") from error
    o = report.options
    ratios = (("vs_torch", "ndpool / PyTorch  (below 1: ndpool is faster)"),
              ("vs_bound", "ndpool / bandwidth bound  (1: at the memory limit)"))
    variants = [(layout, n) for layout in o.layouts for n in o.threads]
    height = 3.2 * len(o.passes) + 1.0
    figure, axes = plt.subplots(len(o.passes), 2, squeeze=False, sharey="col",
                                figsize=(min(16, 6 + 1.0 * len(o.configs)), height))
    for row_axes, pass_ in zip(axes, o.passes):
        for ax, (attribute, title) in zip(row_axes, ratios):
            _bars(ax, report.rows, pass_, attribute, o.configs, variants)
            ax.set_title(f"{pass_}: {title}", fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    top = 1 - 0.9 / height        # room for the title and the legend, in inches
    figure.suptitle(f"ndpool ({report.backend} backend) on {cpu_name()}: time ratios, "
                    "log scale, lower is better", y=1 - 0.15 / height, fontsize=11)
    figure.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, top),
                  ncol=len(variants), frameon=False, fontsize=9)
    figure.tight_layout(rect=(0, 0, 1, top))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _bars(ax, rows, pass_, attribute, configs, variants) -> None:
    width = 0.8 / len(variants)
    for k, (layout, threads) in enumerate(variants):
        values = {r.config: getattr(r, attribute) for r in rows
                  if r.pass_ == pass_ and r.layout == layout and r.threads == threads}
        heights = [values.get(name) or np.nan for name in configs]
        ax.bar([i + (k - (len(variants) - 1) / 2) * width for i in range(len(configs))],
               heights, width, label=f"{layout.replace('channels_', 'channels-')}, "
               f"{threads} thread{'s' * (threads > 1)}", color=f"C{k}")
    ax.axhline(1.0, color="black", linewidth=1)
    ax.set_yscale("log")
    ax.set_xticks(range(len(configs)))
    ax.set_xticklabels(configs, rotation=30, ha="right", fontsize=9)
    ax.set_axisbelow(True)
    ax.grid(axis="y", which="major", alpha=0.4)
    ax.set_ylabel("ratio")
    if attribute == "vs_torch" and all(r.torch_s is None for r in rows):
        ax.text(0.5, 0.5, "PyTorch not installed", transform=ax.transAxes, ha="center")


# ------------------------------------------------------------------- the SIMD level
def simd_config() -> dict:
    """The compiled core's SIMD level in use (``"simd"``), the levels built (lowest first)
    and those this CPU runs; a core without run-time dispatch reports ``"native"``.

    >>> info = simd_config()
    >>> {"simd", "simd_built", "simd_supported"} <= set(info), info["simd"] in info["simd_built"]
    (True, True)
    """
    import ndpool
    show_config = getattr(ndpool, "show_config", None)
    if show_config is None:   # cores before run-time dispatch are built for one level
        return {"simd": "native", "simd_built": ["native"], "simd_supported": ["native"]}
    return show_config(mode="dict")


def simd_problem(level: str, config: dict) -> Optional[str]:
    """Why the core cannot run ``level``, or None (also when it does not say what it has).

    >>> simd_problem("avx512", {"simd_built": ["baseline", "avx2"],
    ...                         "simd_supported": ["baseline", "avx2"]})
    'ndpool bench: --simd avx512 is not built into this core (built: baseline, avx2)'
    """
    built, supported = config["simd_built"], config["simd_supported"]
    if built == ["native"]:
        return None
    if level not in built:
        return (f"ndpool bench: --simd {level} is not built into this core "
                f"(built: {', '.join(built)})")
    if level not in supported:
        return (f"ndpool bench: --simd {level} is built but this CPU cannot run it "
                f"(it runs: {', '.join(supported)})")
    return None


def rerun_argv(args: argparse.Namespace) -> List[str]:
    """Options that reproduce ``args`` in a fresh process, ``--simd`` left out.

    >>> parser = argparse.ArgumentParser(); add_arguments(parser)
    >>> args = parser.parse_args(["--threads", "2", "--no-naive", "--simd", "avx2"])
    >>> argv = rerun_argv(args)
    >>> argv[argv.index("--threads") + 1], "--no-naive" in argv, "--simd" in argv
    ('2', True, False)
    """
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = []
    for name in vars(parser.parse_args([])):   # every option of add_arguments, by dest
        value, option = getattr(args, name), "--" + name.replace("_", "-")
        if name == "simd" or value is None:
            continue
        if isinstance(value, bool):
            argv.append(option if value else "--no-" + option[2:])
        else:
            text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
            argv += [option, text]
    return argv


def rerun_with_simd(args: argparse.Namespace, level: str) -> int:
    """Run the same benchmark in a fresh process with ``NDPOOL_SIMD=level`` (the core
    fixes its level at import), its output streaming through; its exit code."""
    import ndpool
    package_root = str(Path(ndpool.__file__).resolve().parents[1])   # the same ndpool
    environment = dict(os.environ, NDPOOL_SIMD=level, PYTHONPATH=os.pathsep.join(
        filter(None, (package_root, os.environ.get("PYTHONPATH")))))
    command = [sys.executable, "-m", "ndpool.cli", "bench", *rerun_argv(args)]
    print(f"ndpool bench: SIMD level {simd_config()['simd']} in use; re-running with "
          f"NDPOOL_SIMD={level}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    return subprocess.call(command, env=environment)


def _simd_line(simd: dict) -> str:
    asked = os.environ.get("NDPOOL_SIMD")
    line = (f"- SIMD: `{simd['simd']}` in use (built: {', '.join(simd['simd_built'])}; "
            f"this CPU runs: {', '.join(simd['simd_supported'])})")
    if asked and asked != simd["simd"]:
        return line + f"; NDPOOL_SIMD={asked} was asked for but is not what the core runs"
    return line + (f", set by NDPOOL_SIMD={asked}" if asked else "")


# ----------------------------------------------------------------------- entry points
def _switch_simd(args: argparse.Namespace) -> Optional[int]:
    """None to run here; else the exit code of the run with ``--simd``'s level in a fresh
    process, or 2 when this core cannot run it. Warns when NDPOOL_SIMD did not take."""
    config = simd_config()
    if args.simd is not None and args.simd != config["simd"]:
        problem = simd_problem(args.simd, config)
        if problem:
            print(problem, file=sys.stderr)
            return 2
        return rerun_with_simd(args, args.simd)
    asked = os.environ.get("NDPOOL_SIMD")
    if asked and asked != config["simd"]:
        print(f"ndpool bench: NDPOOL_SIMD={asked} is set but the core runs {config['simd']} "
              "(a core without run-time dispatch, or one that fell back)", file=sys.stderr)
    return None


def run(args: argparse.Namespace, command: Optional[str] = None) -> int:
    """Run the benchmark described by ``args`` (from ``add_arguments``); 0 on success."""
    import ndpool
    from . import backends

    elsewhere = _switch_simd(args)
    if elsewhere is not None:
        return elsewhere
    args.backend = args.backend or backends.default_backend()
    if args.backend == "compiled" and backends.default_backend() != "compiled":
        print("ndpool bench: the compiled backend is not available in this build; "
              "use --backend reference", file=sys.stderr)
        return 2
    torch = import_torch()
    with ndpool.use_backend(args.backend):
        report = collect(args, torch)
    command = command or " ".join(["ndpool"] + sys.argv[1:])
    if os.environ.get("NDPOOL_SIMD"):   # part of what was measured: the command says it
        command = f"NDPOOL_SIMD={os.environ['NDPOOL_SIMD']} {command}"
    text = render(report, command)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    kept = sections(args.output.read_text()) if args.output.exists() else []
    args.output.write_text("\n\n".join([text.rstrip("\n")] + kept) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)
    if args.plot is not None:
        try:
            plot(report, args.plot)
        except RuntimeError as error:
            print(error, file=sys.stderr)
            return 1
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


# ------------------------------------------- sections other benchmarks write
# a section written by another benchmark script (benchmarks/resnet18.py) lies between
# these markers, and a new `ndpool bench` run keeps it
_BEGIN, _END = "<!-- begin section {} -->", "<!-- end section {} -->"
_SECTION = re.compile(r"<!-- begin section (\S+) -->.*?<!-- end section \1 -->", re.S)


def sections(text: str) -> List[str]:
    """The marked sections of a results file, markers included, in order."""
    return [match.group(0) for match in _SECTION.finditer(text)]


def write_section(path: Path, name: str, title: str, lines: Sequence[str]) -> None:
    """Put section ``name`` (a ``## title`` and ``lines``) into the results file at
    ``path``: in place of its old version, or at the end."""
    block = "\n".join([_BEGIN.format(name), f"## {title}", ""] + list(lines)
                      + [_END.format(name)])
    text = path.read_text() if path.exists() else ""
    old = next((s for s in sections(text) if s.startswith(_BEGIN.format(name))), None)
    text = text.replace(old, block) if old else text.rstrip("\n") + "\n\n" + block
    path.write_text(text.rstrip("\n") + "\n")


def main(argv: Optional[Sequence[str]] = None, prog: str = "ndpool bench",
         output: Optional[Path] = None) -> int:
    """``ndpool bench`` without the rest of the CLI (``benchmarks/run.py`` uses it)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    add_arguments(parser)
    if output is not None:
        parser.set_defaults(output=output)
    argv = list(sys.argv[1:] if argv is None else argv)
    return run(parser.parse_args(argv), " ".join([prog] + argv))
