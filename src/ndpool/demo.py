"""Draw pictures that teach pooling: an image pooled at several windows, and the textbook 4x4 figures.

``ndpool demo [--input IMAGE] [--out DIR]`` writes three PNGs into DIR (default: the
current folder) and prints their paths, plus the textbook example in the terminal;
``--variants`` instead draws what each pooling variant (stochastic, blur, GeM, pyramid,
...) does to the image and to the 4x4 grid, in one PNG. Every number drawn comes from
ndpool itself. Needs the ``plot`` extra (matplotlib, Pillow).

>>> from ndpool import demo
>>> book = demo.textbook()
>>> book["max"]
array([[4., 5.],
       [3., 6.]])
>>> book["dx_split"]        # the tied 6s share their window's gradient of 4
array([[0., 0., 0., 0.],
       [1., 0., 0., 2.],
       [3., 0., 2., 2.],
       [0., 0., 0., 0.]])
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

import ndpool

__all__ = ["textbook", "builtin_image", "load_image", "pooled_figure", "forward_figure",
           "backward_figure", "variants_figure", "variant_grids", "add_arguments", "run"]

WINDOWS = (2, 4, 8)
OPS = (("max", ndpool.max_pool2d), ("average", ndpool.avg_pool2d), ("min", ndpool.min_pool2d))
FILES = {"pooled": "ndpool_pooled.png", "forward": "ndpool_forward.png",
         "backward": "ndpool_backward.png"}
MAX_SIDE = 512          # larger inputs are first shrunk (by ndpool's average) to keep it quick
# one colour per 2x2 window of the textbook grid: (edge, light fill)
COLOURS = (("#1f77b4", "#d6e6f4"), ("#e07b00", "#fde3c8"), ("#2a9d3a", "#d5efd8"),
           ("#8e44ad", "#eadcf2"))
PLOT_HINT = 'the pictures need matplotlib and Pillow: pip install "ndpool[plot]"'
VARIANTS_FILE = "ndpool_variants.png"
#: the image is pooled with windows (and strides) of this size; the 4x4 grid with 2
IMAGE_WINDOW = 4


class DemoError(Exception):
    """A user-facing problem (bad path, missing extra): printed without a traceback."""


# ------------------------------------------------------------------ the numbers
def textbook() -> dict:
    """The textbook 4x4 example, forward and backward, all computed by ndpool.

    Keys: ``x`` (4x4 ints as floats, one window holds a tie), ``dy`` (the upstream
    gradient), ``max``, ``avg``, ``indices`` (flat, of the max), ``dx_first``,
    ``dx_split`` (max backward with ``ties="first"`` / ``"split"``) and ``dx_avg``.
    """
    x = np.array([[1, 3, 2, 1],
                  [4, 2, 1, 5],
                  [3, 1, 6, 6],
                  [1, 2, 2, 0]], dtype=np.float64)
    dy = np.array([[1, 2],
                   [3, 4]], dtype=np.float64)
    batch = lambda a: a[None, None]
    (y_max, indices), pull_first = ndpool.vjp(ndpool.max_pool2d, batch(x), 2,
                                              return_indices=True)
    _, pull_split = ndpool.vjp(ndpool.max_pool2d, batch(x), 2, ties="split")
    y_avg, pull_avg = ndpool.vjp(ndpool.avg_pool2d, batch(x), 2)
    return {"x": x, "dy": dy, "max": y_max[0, 0], "avg": y_avg[0, 0],
            "indices": indices[0, 0], "dx_first": pull_first(batch(dy))[0, 0],
            "dx_split": pull_split(batch(dy))[0, 0], "dx_avg": pull_avg(batch(dy))[0, 0]}


def builtin_image(size: int = 128) -> np.ndarray:
    """A synthetic grayscale scene in [0, 1], made by code (no file, no network).

    It holds what pooling shows best: thin bright and dark lines (max keeps the bright,
    min the dark ones), a fine checkerboard (average turns it grey), salt-and-pepper
    specks, solid shapes and a smooth gradient.

    >>> from ndpool import demo
    >>> image = demo.builtin_image()
    >>> image.shape, image.dtype, bool(image.min() >= 0 and image.max() <= 1)
    ((128, 128), dtype('float32'), True)
    """
    rng = np.random.default_rng(7)
    r, c = np.mgrid[0:size, 0:size] / size                       # rows, columns in [0, 1)
    image = 0.2 + 0.35 * (r + c) / 2                             # diagonal gradient
    image[(r - 0.28) ** 2 + (c - 0.27) ** 2 < 0.17 ** 2] = 0.95  # bright disc
    ring = np.hypot(r - 0.72, c - 0.27)
    image[(ring > 0.11) & (ring < 0.17)] = 0.05                  # dark ring
    square = (r > 0.08) & (r < 0.45) & (c > 0.56) & (c < 0.93)
    image[square] = 0.1                                          # dark square ...
    inner = (r > 0.15) & (r < 0.38) & (c > 0.63) & (c < 0.86)
    checker = ((np.arange(size)[:, None] // 2 + np.arange(size)[None, :] // 2) % 2) == 0
    image[inner] = np.where(checker, 1.0, 0.0)[inner]            # ... with a fine checkerboard
    step = max(size // 16, 2)
    lines = (r > 0.55) & (c > 0.55)
    image[lines & (np.arange(size)[None, :] % step == 0)] = 1.0  # 1-pixel bright lines
    image[lines & (np.arange(size)[:, None] % step == step // 2)] = 0.0   # 1-pixel dark lines
    specks = (r < 0.5) & (c < 0.5) & ((r - 0.28) ** 2 + (c - 0.27) ** 2 >= 0.17 ** 2)
    draw = rng.random((size, size))
    image[specks & (draw < 0.02)] = 1.0                          # salt
    image[specks & (draw > 0.98)] = 0.0                          # pepper
    image += rng.normal(0, 0.02, image.shape)
    return np.clip(image, 0, 1).astype(np.float32)


def load_image(path) -> np.ndarray:
    """Read a PNG/JPEG as floats in [0, 1]: ``(H, W)`` if gray, ``(3, H, W)`` if colour."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DemoError(PLOT_HINT) from None
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("1", "L", "LA", "P") and _is_gray(image):
                return np.asarray(image.convert("L"), dtype=np.float32) / 255
            if image.mode in ("I", "I;16", "I;16B", "F"):       # deep grays: stretch
                array = np.asarray(image, dtype=np.float32)
                low, high = float(array.min()), float(array.max())
                return (array - low) / (high - low if high > low else 1.0)
            rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    except FileNotFoundError:
        raise DemoError(f"--input {str(path)!r}: no such file") from None
    except IsADirectoryError:
        raise DemoError(f"--input {str(path)!r} is a folder, not an image") from None
    except UnidentifiedImageError:
        raise DemoError(f"--input {str(path)!r} is not an image Pillow can read "
                        "(try a PNG or JPEG)") from None
    except OSError as error:
        raise DemoError(f"--input {str(path)!r} could not be read: {error}") from None
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))      # channels first, as ndpool


def _is_gray(image) -> bool:
    if image.mode != "P":
        return True
    palette = np.asarray(image.convert("RGB"))
    return bool((palette[..., 0] == palette[..., 1]).all()
                and (palette[..., 1] == palette[..., 2]).all())


def _shrink(image: np.ndarray):
    """Average-pool (with ndpool) by the integer factor that brings it under MAX_SIDE."""
    factor = math.ceil(max(image.shape[-2:]) / MAX_SIDE)
    if factor == 1:
        return image, 1
    return ndpool.avg_pool2d(image[None] if image.ndim == 2 else image, factor)[
        0 if image.ndim == 2 else slice(None)], factor


# ----------------------------------------------------------------- the pictures
def _require_matplotlib() -> None:
    """Fail with the install hint before any figure is begun, not part-way through one."""
    try:
        import matplotlib.figure  # noqa: F401
        import matplotlib.gridspec  # noqa: F401
        import matplotlib.patches  # noqa: F401
    except ImportError:
        raise DemoError(PLOT_HINT) from None


def _pyplot_free_figure(**kwargs):
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _show(ax, image: np.ndarray, title: str):
    """Nearest-neighbour display so each pooled cell is one visible block."""
    if image.ndim == 3:
        ax.imshow(np.clip(image.transpose(1, 2, 0), 0, 1), interpolation="nearest")
    else:
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])


def pooled_figure(image: np.ndarray, note: str = ""):
    """The image next to its max / average / min pooling with 2x2, 4x4 and 8x8 windows."""
    from matplotlib.gridspec import GridSpec

    fig = _pyplot_free_figure(figsize=(14, 10.2), layout="constrained")
    grid = GridSpec(3, 4, figure=fig, width_ratios=(1.6, 1, 1, 1))
    height, width = image.shape[-2:]
    _show(fig.add_subplot(grid[:, 0]), image, f"input, {height}×{width}{note}")
    batched = image[None] if image.ndim == 2 else image          # (C, H, W): one plane each
    for row, (name, op) in enumerate(OPS):
        for column, k in enumerate(WINDOWS):
            pooled = op(batched, k)
            pooled = pooled[0] if image.ndim == 2 else pooled
            ax = fig.add_subplot(grid[row, column + 1])
            _show(ax, pooled, f"{op.__name__}(x, {k}): {name} of {k}×{k}\n"
                  f"→ {pooled.shape[-2]}×{pooled.shape[-1]}")
    fig.suptitle("Pooling keeps one number per window: max keeps bright details, min keeps "
                 "dark ones, average blurs", fontsize=13)
    return fig


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}".rstrip("0")


def _window_of(row: int, column: int, k: int = 2) -> int:
    return (row // k) * 2 + column // k


def _draw_grid(ax, values, title, fill=None, bold=(), outline_windows=False, dim_zeros=False):
    """Numbers in cells; ``fill(r, c)`` gives a cell colour; windows outlined in colour."""
    from matplotlib.patches import Rectangle

    rows, columns = values.shape
    for r in range(rows):
        for c in range(columns):
            zero = dim_zeros and values[r, c] == 0
            colour = "#f2f2f2" if zero or fill is None else fill(r, c)
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor=colour, edgecolor="#9a9a9a",
                                   linewidth=0.8))
            ax.text(c + 0.5, r + 0.5, _number(values[r, c]), ha="center", va="center",
                    fontsize=17, color="#a8a8a8" if zero else "black",
                    fontweight="bold" if (r, c) in bold else "normal")
            if (r, c) in bold:       # a ring round each winner
                ax.add_patch(Rectangle((c + 0.1, r + 0.1), 0.8, 0.8, fill=False,
                                       edgecolor="black", linewidth=1.6))
    if outline_windows:
        for w in range(4):
            ax.add_patch(Rectangle((2 * (w % 2) + 0.04, 2 * (w // 2) + 0.04), 1.92, 1.92,
                                   fill=False, edgecolor=COLOURS[w][0], linewidth=3.5))
    ax.set_xlim(-0.05, columns + 0.05)
    ax.set_ylim(rows + 0.05, -0.05)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=12.5)


def _input_fill(r, c):
    return COLOURS[_window_of(r, c)][1]


def _output_fill(r, c):
    return COLOURS[r * 2 + c][1]


def _winners(book, which="first"):
    """Cells that receive gradient: the first maximum, or every tied maximum."""
    cells = book["dx_first"] if which == "first" else book["dx_split"]
    return {(int(r), int(c)) for r, c in zip(*np.nonzero(cells))}


def _figure_of_panels(widths, height=4.3):
    from matplotlib.gridspec import GridSpec

    fig = _pyplot_free_figure(figsize=(sum(widths) * 0.95 + 1.2, height))
    grid = GridSpec(1, len(widths), figure=fig, width_ratios=widths, wspace=0.35,
                    left=0.02, right=0.97, top=0.76, bottom=0.1)
    return fig, [fig.add_subplot(grid[0, i]) for i in range(len(widths))]


def forward_figure(book: dict):
    """The 4x4 grid with its four 2x2 windows in colour, and its max and mean pooling."""
    fig, (ax_x, ax_max, ax_avg) = _figure_of_panels((4, 2, 2))
    _draw_grid(ax_x, book["x"], "input x (4×4), 2×2 windows,\nstride 2 (ringed: the maxima)",
               _input_fill,
               bold=_winners(book, "split"), outline_windows=True)
    _draw_grid(ax_max, book["max"], "max_pool2d(x, 2)\nlargest in each window",
               _output_fill)
    _draw_grid(ax_avg, book["avg"], "avg_pool2d(x, 2)\nmean of each window", _output_fill)
    fig.suptitle("Forward: each coloured window of x becomes one output cell",
                 fontsize=13.5)
    return fig


def backward_figure(book: dict):
    """Where the upstream gradient goes: to the winner (max), shared (split), spread (mean)."""
    fig, axes = _figure_of_panels((4, 2, 4, 4, 4), height=4.3)
    _draw_grid(axes[0], book["x"], "input x\n(the 6s tie)", _input_fill,
               bold=_winners(book, "split"), outline_windows=True)
    _draw_grid(axes[1], book["dy"], "upstream\ngradient dy", _output_fill)
    panels = (("dx_first", 'max_pool2d, ties="first"\nall of dy to the first max'),
              ("dx_split", 'max_pool2d, ties="split"\ntied maxima share dy'),
              ("dx_avg", "avg_pool2d\ndy / 4 to every cell"))
    for ax, (key, title) in zip(axes[2:], panels):
        _draw_grid(ax, book[key], "dx: " + title, _input_fill, outline_windows=True,
                   dim_zeros=True)
    fig.suptitle("Backward: the gradient dy of each output cell flows back into its "
                 "window of x", fontsize=13.5)
    return fig


# ------------------------------------------------------------------ the variants
def _pyramid(x: np.ndarray, window: int) -> np.ndarray:
    """``spatial_pyramid_pool`` of ``x`` with levels 1, 2 (and 4 for the image), its
    vector unpacked into the levels' n x n grids, side by side (NaN between them); on the
    image each level is enlarged to the finest one's size so that the cells line up."""
    levels = (1, 2, 4) if window > 2 else (1, 2)
    vector = ndpool.spatial_pyramid_pool(x, levels)
    batch, channels = x.shape[:2]
    side = levels[-1]
    parts, start = [], 0
    for n in levels:
        level = vector[:, start:start + channels * n * n].reshape(batch, channels, n, n)
        start += channels * n * n
        if window > 2:
            level = np.kron(level, np.ones((side // n, side // n)))
        canvas = np.full((batch, channels, side, level.shape[-1]), np.nan)
        canvas[..., :level.shape[-2], :] = level
        parts += [canvas, np.full((batch, channels, side, 1), np.nan)]
    return np.concatenate(parts[:-1], axis=-1)


#: (title, op) per variant panel: ``op(x, k)`` pools non-negative (N, C, H, W) ``x`` with
#: windows of about ``k`` (2 on the 4x4 grid, IMAGE_WINDOW on the image) and returns an
#: (N, C, h, w) picture; "{k}" in the title is replaced by ``k``. Add a variant with a row.
VARIANTS = (
    ("max_pool2d(x, {k})\nfor comparison", lambda x, k: ndpool.max_pool2d(x, k)),
    ("stochastic_pool2d(x, {k}, rng=0)\na cell drawn, p ∝ value",
     lambda x, k: ndpool.stochastic_pool2d(x, k, rng=0)),
    ("stochastic_pool2d(x, {k},\ntraining=False): Σx² / Σx",
     lambda x, k: ndpool.stochastic_pool2d(x, k, training=False)),
    ("blur_pool2d(x, {f}, stride={k})\nbinomial blur, subsample",
     lambda x, k: ndpool.blur_pool2d(x, 2 * k - 1, stride=k)),
    ("max_blur_pool2d(x, 2, {f}, {k})\nmax (stride 1), then blur",
     lambda x, k: ndpool.max_blur_pool2d(x, 2, 2 * k - 1, stride=k)),
    ("global_gem_pool(x, p=3)\none value per plane",
     lambda x, k: ndpool.global_gem_pool(x, p=3.0, keepdims=True)),
    ("spatial_pyramid_pool(x)\nlevels 1, 2{more}, side by side", _pyramid),
    ("soft_pool2d(x, {k})\nΣ e^x·x / Σ e^x per window",
     lambda x, k: ndpool.soft_pool2d(x, k)),
    ("attention_pool2d(x, 2x, {k})\nsoftmax(logits)-weighted",
     lambda x, k: ndpool.attention_pool2d(x, 2 * x, k)),
    ("median_pool2d(x, {k})\nlower median per window",
     lambda x, k: ndpool.median_pool2d(x, k)),
)


def _variant_title(title: str, k: int) -> str:
    return title.format(k=k, f=2 * k - 1, more=", 4" if k > 2 else "")


def variant_grids(book=None) -> dict:
    """What each variant of ``VARIANTS`` gives on the textbook 4x4 grid, by title.

    >>> from ndpool import demo
    >>> grids = demo.variant_grids()
    >>> grids["max_pool2d(x, 2) for comparison"]
    array([[4., 5.],
           [3., 6.]])
    >>> grids["stochastic_pool2d(x, 2, training=False): Σx² / Σx"].round(2)
    array([[3.  , 3.44],
           [2.14, 5.43]])
    """
    x = (book or textbook())["x"][None, None]
    return {_variant_title(title, 2).replace("\n", " ").replace(",  ", ", "): op(x, 2)[0, 0]
            for title, op in VARIANTS}


def _draw_values(ax, values, title):
    """A small grid of numbers; NaN cells (between pyramid levels) are left out."""
    from matplotlib.patches import Rectangle

    rows, columns = values.shape
    for r in range(rows):
        for c in range(columns):
            if np.isnan(values[r, c]):
                continue
            colour = _output_fill(r, c) if values.shape == (2, 2) else "#eeeeee"
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor=colour, edgecolor="#9a9a9a",
                                   linewidth=0.8))
            ax.text(c + 0.5, r + 0.5, _number(values[r, c]), ha="center", va="center",
                    fontsize=13)
    ax.set_xlim(-0.05, max(columns, 2) + 0.05)
    ax.set_ylim(max(rows, 2) + 0.05, -0.05)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=9.5)


def variants_figure(image: np.ndarray, note: str = "", book=None):
    """One column per variant: what it makes of the image (top, windows of IMAGE_WINDOW)
    and of the textbook 4x4 grid (bottom, windows of 2); the input in the first column."""
    from matplotlib.gridspec import GridSpec

    book = book or textbook()
    columns = len(VARIANTS) + 1
    fig = _pyplot_free_figure(figsize=(2.45 * columns, 6.4))
    grid = GridSpec(2, columns, figure=fig, height_ratios=(1.25, 1), wspace=0.25,
                    hspace=0.45, left=0.01, right=0.99, top=0.84, bottom=0.02)
    height, width = image.shape[-2:]
    _show(fig.add_subplot(grid[0, 0]), image, f"input, {height}×{width}{note}")
    _draw_grid(fig.add_subplot(grid[1, 0]), book["x"], "textbook x (4×4)\n2×2 windows",
               _input_fill, outline_windows=True)
    batched = image[None, None] if image.ndim == 2 else image[None]
    for column, (title, op) in enumerate(VARIANTS, start=1):
        pooled = op(batched, IMAGE_WINDOW)[0]
        ax = fig.add_subplot(grid[0, column])
        ax.set_facecolor("#4a5a70")          # shows through NaN cells (between levels)
        _show(ax, pooled[0] if image.ndim == 2 else pooled,
              _variant_title(title, IMAGE_WINDOW) +
              f"\n→ {pooled.shape[-2]}×{pooled.shape[-1]}")
        _draw_values(fig.add_subplot(grid[1, column]), op(book["x"][None, None], 2)[0, 0],
                     _variant_title(title, 2))
    fig.suptitle("Pooling beyond max and average: each variant on the image (top, windows "
                 f"of {IMAGE_WINDOW}) and on the 4×4 grid (bottom, windows of 2)",
                 fontsize=13)
    return fig


# ------------------------------------------------------------------ the terminal
def _grid_text(values: np.ndarray, indent: str = "    ") -> str:
    cells = [["" if np.isnan(v) else _number(v) for v in row] for row in values]
    width = max(len(c) for row in cells for c in row)
    return "\n".join(indent + "  ".join(c.rjust(width) for c in row) for row in cells)


def textbook_text(book: dict) -> str:
    """The textbook example as plain text, for the terminal."""
    parts = [("x, a 4x4 input; 2x2 windows with stride 2", book["x"]),
             ("max_pool2d(x, 2)", book["max"]),
             ("avg_pool2d(x, 2)", book["avg"]),
             ("indices of the maxima (flat, per plane)", book["indices"]),
             ("upstream gradient dy", book["dy"]),
             ('dx of max_pool2d, ties="first" (PyTorch): to the first maximum',
              book["dx_first"]),
             ('dx of max_pool2d, ties="split": tied maxima share', book["dx_split"]),
             ("dx of avg_pool2d: dy / 4 over each window", book["dx_avg"])]
    return "\n".join(f"{title}\n{_grid_text(values)}" for title, values in parts)


def variants_text(book: dict) -> str:
    """What each variant gives on the textbook grid, as plain text."""
    parts = [f"{title}\n{_grid_text(values)}" for title, values in variant_grids(book).items()]
    return (f"x, a 4x4 input; windows of 2\n{_grid_text(book['x'])}\n" + "\n".join(parts)
            + "\n(spatial_pyramid_pool: level 1, a blank column, then level 2; its "
            "vector is the levels' cells in this order)")


# ------------------------------------------------------------------ the command
def add_arguments(parser) -> None:
    """The ``ndpool demo`` options."""
    parser.add_argument("--input", metavar="IMAGE",
                        help="a PNG or JPEG to pool instead of the built-in scene")
    parser.add_argument("--out", metavar="DIR", default=".",
                        help="folder for the PNG files (default: the current folder)")
    parser.add_argument("--variants", action="store_true",
                        help=f"draw the pooling variants (stochastic, blur, GeM, pyramid, "
                             f"...) on the image and the 4x4 grid instead, into "
                             f"{VARIANTS_FILE}")


def make_pictures(image: np.ndarray, out: Path, note: str = "") -> list:
    """Write the three PNGs into ``out``; returns their paths."""
    _require_matplotlib()
    book = textbook()
    figures = {"pooled": pooled_figure(image, note), "forward": forward_figure(book),
               "backward": backward_figure(book)}
    paths = []
    for key, fig in figures.items():
        path = out / FILES[key]
        fig.savefig(path, dpi=100)
        paths.append(path)
    return paths


def make_variants_picture(image: np.ndarray, out: Path, note: str = "") -> list:
    """Write the variants PNG into ``out``; returns its path in a list."""
    _require_matplotlib()
    path = out / VARIANTS_FILE
    variants_figure(image, note).savefig(path, dpi=100)
    return [path]


def run(args) -> int:
    """Run the demo; a user error prints one line on stderr and returns 2."""
    try:
        return _run(args)
    except DemoError as error:
        sys.stdout.flush()      # the terminal example first, so the error is the last line
        print(f"ndpool demo: {error}", file=sys.stderr)
        return 2


def _run(args) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise DemoError(f"--out {str(out)!r} is a file, not a folder")
    note = ""
    if args.input:
        image = load_image(args.input)
        image, factor = _shrink(image)
        if factor > 1:
            note = f"\n(shrunk {factor}× by avg_pool2d)"
    else:
        image = builtin_image()
        note = " (built-in)"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DemoError(f"--out {str(out)!r} cannot be created: {error}") from None
    variants = getattr(args, "variants", False)
    print(variants_text(textbook()) if variants else textbook_text(textbook()))
    print()
    try:
        paths = make_variants_picture(image, out, note) if variants else make_pictures(
            image, out, note)
    except PermissionError as error:
        raise DemoError(f"--out {str(out)!r} is not writable: {error}") from None
    for path in paths:
        print(f"wrote {path}")
    return 0
