"""Multiscale pyramids: ``pyramid`` writes a chain of ``coarsen`` levels to zarr with
OME-NGFF metadata, one output chunk at a time, so that memory stays a few chunks per
worker and a rerun after a crash picks up where the last run stopped.

Each chunk is a task that reads the region of the previous level its blocks cover,
coarsens it (``boundary="pad"``) and writes it; a chunk counts as done only once an
empty marker file is created after its write, so a chunk cut short by a crash is
written again. The markers live in ``.ndpool-progress/`` beside the levels and are
removed, after the NGFF metadata is written, when the last level is done.
"""
from __future__ import annotations

import itertools
import json
import math
import numbers
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ._arguments import FLOAT_TYPES, INT_TYPES, choice, flag
from ._errors import fail, type_fail
from ._threads import capped, get_num_threads
from .arrays import is_dask
from .coarsening import OPS, _out_dtype, coarsen

NAME = "pyramid"
PROGRESS = ".ndpool-progress"
DEFAULT_AXES = {2: ("y", "x"), 3: ("z", "y", "x"), 4: ("c", "z", "y", "x"),
                5: ("t", "c", "z", "y", "x")}
AXIS_TYPES = {"t": "time", "c": "channel"}
CHUNK_CELLS = 1 << 21   # default chunks: about 2 M cells (128^3, 1024^2)


@dataclass(frozen=True)
class Plan:
    """Everything that fixes the store's contents: a rerun must find the same plan."""
    shapes: Tuple[Tuple[int, ...], ...]
    dtypes: Tuple[str, ...]
    factors: Tuple[int, ...]
    chunks: Tuple[int, ...]
    axes: Tuple[str, ...]
    op: str
    ngff: str

    def level_chunks(self, level: int) -> Tuple[int, ...]:
        return tuple(min(c, n) for c, n in zip(self.chunks, self.shapes[level]))

    def grid(self, level: int):
        """Index of every chunk of a level, in C order."""
        counts = [-(-n // c) for n, c in zip(self.shapes[level], self.level_chunks(level))]
        return itertools.product(*map(range, counts))


def pyramid(source, store, *, levels=None, min_size=64, factors=2, op="mean", chunks=None,
            axes=None, ngff="0.5", progress=True, overwrite=False):
    """Write ``source`` and its coarsened levels to ``store`` as an OME-NGFF multiscale image.

    >>> import numpy as np, zarr, ndpool, tempfile, os
    >>> volume = np.arange(40 * 40 * 40, dtype=np.float32).reshape(40, 40, 40)
    >>> out = os.path.join(tempfile.mkdtemp(), "volume.ome.zarr")
    >>> ndpool.pyramid(volume, out, min_size=8, chunks=16, progress=False)
    >>> [zarr.open_array(f"{out}/{k}").shape for k in range(3)]
    [(40, 40, 40), (20, 20, 20), (10, 10, 10)]
    >>> bool((zarr.open_array(f"{out}/1")[:] == ndpool.coarsen(volume, 2)).all())
    True

    ``source``: a NumPy or Dask array, a zarr array, or the path of a zarr array (or of
    an NGFF image, whose level ``0`` is read) or of a ``.npy`` file. ``store``: a
    directory path (or a ``zarr.storage.LocalStore``). Level 0 is the source; level k is
    ``coarsen(level k-1, factors, op, boundary="pad")``, read back from the store, until
    there are ``levels`` levels or the next level would make a coarsened axis shorter
    than ``min_size``. ``factors``: an int (every spatial axis), a tuple (one per axis)
    or a dict ``{axis index or name: factor}``; the ``c`` and ``t`` axes are never
    coarsened. ``axes``: NGFF axis names (by rank ``y x``, ``z y x``, ``c z y x``,
    ``t c z y x``). ``chunks``: an int or a tuple, the same for every level (clipped to
    its shape); by default about 2 M cells, one channel and time point each.

    ``ngff="0.5"`` writes zarr v3 with OME-NGFF 0.5 metadata, ``"0.4"`` zarr v2 with
    NGFF 0.4. Level k's scale is ``factor**k`` and its translation the centre of its
    first block, ``translation(k-1) + 0.5*(f-1)*scale(k-1)``.

    Chunks run on a thread pool (``ndpool.get_num_threads()`` workers, one core thread
    each), or on the workers of a ``dask.distributed`` client when one is active. A
    rerun of the same call on a store left half-written completes it, and the store
    then equals an uninterrupted run's; ``overwrite=True`` starts over. ``progress``
    shows a tqdm bar of chunks done and throughput (when tqdm is installed).
    """
    op = choice(NAME, "op", op, OPS)
    ngff = choice(NAME, "ngff", ngff, ("0.5", "0.4"))
    progress, overwrite = flag(NAME, "progress", progress), flag(NAME, "overwrite", overwrite)
    root = _store_path(store)
    data = _source(source)
    names = _axes(axes, data.ndim)
    per_axis = _level_factors(factors, names)
    plan = _plan(data, per_axis, _levels(levels), _positive("min_size", min_size),
                 _chunks(chunks, data, names), names, op, ngff)
    if overwrite and root.exists():
        shutil.rmtree(root)
    if not _begin(root, plan):
        return None
    with _Bar(progress, plan) as bar:
        for level in range(len(plan.shapes)):
            _write_level(data, root, plan, level, bar)
    _finish(root, plan)
    return None


# ------------------------------------------------------------------ the arguments
def _store_path(store) -> Path:
    if isinstance(store, (str, os.PathLike)):
        return Path(store)
    root = getattr(store, "root", None)   # zarr.storage.LocalStore
    if root is not None:
        return Path(root)
    type_fail(NAME, f"store={type(store).__name__} must be a directory path or a "
              "zarr.storage.LocalStore", "chunks are marked done as files beside the levels")


def _source(source):
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.suffix == ".npy":
            source = np.load(path, mmap_mode="r")
        else:
            import zarr
            node = zarr.open(str(path), mode="r")
            source = node["0"] if isinstance(node, zarr.Group) else node
    elif not (is_dask(source) or _is_zarr(source)):
        source = np.asarray(source)
    dtype = np.dtype(source.dtype)
    if dtype.type not in FLOAT_TYPES + INT_TYPES:
        type_fail(NAME, f"source has dtype {dtype}, which is not supported; use a float or "
                  "integer dtype")
    if not 2 <= len(source.shape) <= 5:
        fail(NAME, f"source has {len(source.shape)} dims; an NGFF image has 2 to 5")
    return source


def _is_zarr(x) -> bool:
    return type(x).__module__.startswith("zarr") and hasattr(x, "chunks")


def _axes(axes, ndim: int) -> Tuple[str, ...]:
    names = DEFAULT_AXES[ndim] if axes is None else (
        tuple(axes.split() if " " in axes else axes) if isinstance(axes, str) else tuple(axes))
    if len(names) != ndim or len(set(names)) != ndim or not all(isinstance(n, str) for n in names):
        fail(NAME, f"axes={axes!r} must name each of the {ndim} axes once")
    kinds = [AXIS_TYPES.get(n, "space") for n in names]
    order = {"time": 0, "channel": 1, "space": 2}
    if kinds != sorted(kinds, key=order.get) or not 2 <= kinds.count("space") <= 3:
        fail(NAME, f"axes={names!r}: NGFF wants an optional 't', an optional 'c', then 2 or 3 "
             "space axes, in that order")
    return names


def _level_factors(factors, names) -> Tuple[int, ...]:
    """One factor per axis, 1 for c and t."""
    spatial = [AXIS_TYPES.get(n) is None for n in names]
    if isinstance(factors, dict):
        out = [1] * len(names)
        for key, value in factors.items():
            axis = names.index(key) if key in names else key
            if not isinstance(axis, numbers.Integral) or not -len(names) <= axis < len(names):
                fail(NAME, f"factors={factors!r} names axis {key!r}, which is neither an axis "
                     f"index nor one of {names}")
            out[int(axis) % len(names)] = value
    elif isinstance(factors, (tuple, list)):
        if len(factors) != len(names):
            fail(NAME, f"factors={factors!r} must have {len(names)} entries, one per axis")
        out = list(factors)
    else:
        out = [factors if s else 1 for s in spatial]
    for name, f, s in zip(names, out, spatial):
        if not isinstance(f, numbers.Integral) or isinstance(f, bool) or f < 1:
            type_fail(NAME, f"factors={factors!r}: the factor of axis {name!r} must be an int "
                      "of at least 1")
        if f > 1 and not s:
            fail(NAME, f"factors={factors!r} coarsens axis {name!r}; the c and t axes are "
                 "never downsampled")
    if all(f == 1 for f in out):
        fail(NAME, f"factors={factors!r} coarsens no axis")
    return tuple(int(f) for f in out)


def _positive(name: str, value) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        fail(NAME, f"{name}={value!r} must be an int of at least 1")
    return int(value)


def _levels(levels) -> Optional[int]:
    return None if levels is None else _positive("levels", levels)


def _chunks(chunks, data, names) -> Tuple[int, ...]:
    if chunks is None:
        spatial = sum(AXIS_TYPES.get(n) is None for n in names)
        side = 1 << int(math.log2(CHUNK_CELLS) // spatial)
        return tuple(1 if n in AXIS_TYPES else side for n in names)
    if isinstance(chunks, numbers.Integral):
        chunks = (chunks,) * len(names)
    if not isinstance(chunks, (tuple, list)) or len(chunks) != len(names):
        fail(NAME, f"chunks={chunks!r} must be an int or {len(names)} ints, one per axis")
    return tuple(_positive("chunks", c) for c in chunks)


def _plan(data, factors, levels, min_size, chunks, names, op, ngff) -> Plan:
    shapes = [tuple(int(n) for n in data.shape)]
    dtypes = [np.dtype(data.dtype).newbyteorder("=")]
    while levels is None or len(shapes) < levels:
        nxt = tuple(-(-n // f) for n, f in zip(shapes[-1], factors))
        if any(f > 1 and m < min_size for m, f in zip(nxt, factors)) or nxt == shapes[-1]:
            break
        shapes.append(nxt)
        dtypes.append(_out_dtype(op, dtypes[-1], None))
    return Plan(tuple(shapes), tuple(d.str for d in dtypes), factors, chunks, names, op, ngff)


# ------------------------------------------------------------------- the store
def _begin(root: Path, plan: Plan) -> bool:
    """Make the store's levels, or check a half-written store holds this plan. False when
    the store already holds this very pyramid, whole."""
    job, created = root / PROGRESS / "job.json", root / PROGRESS / "created"
    record = json.dumps(asdict(plan), sort_keys=True)
    if job.exists():
        if job.read_text() != record:
            fail(NAME, f"{root} holds a half-written pyramid of other settings",
                 "pass overwrite=True to start over", kind=FileExistsError)
        _sweep_temporaries(root, plan)
    elif root.exists() and any(p.name != PROGRESS for p in root.iterdir()):
        if _complete(root, plan):
            return False
        fail(NAME, f"{root} exists and is not this pyramid", "pass overwrite=True to replace it",
             kind=FileExistsError)
    else:
        job.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(job, record)
    if not created.exists():      # a crash may have cut the levels' creation short
        _create_levels(root, plan)
        created.touch()
    return True


# the temporary files a killed job leaves in its levels: zarr's atomic writes
# (<chunk>.<uuid4 hex>.partial) and the raw chunk copies' (<chunk>.tmp)
_TEMPORARY = re.compile(r"(\.[0-9a-f]{32}\.partial|\.tmp)$")


def _sweep_temporaries(root: Path, plan: Plan) -> None:
    """Remove what a job killed midway left half-written in the levels' folders: each of
    those chunks is unmarked and gets written again, and the finished store must hold
    exactly what an uninterrupted run writes."""
    for level in range(len(plan.shapes)):
        for folder, _, names in os.walk(root / str(level)):
            for name in names:
                if _TEMPORARY.search(name):
                    os.remove(os.path.join(folder, name))


def _create_levels(root: Path, plan: Plan) -> None:
    import zarr
    fmt = 3 if plan.ngff == "0.5" else 2
    group = zarr.open_group(str(root), mode="a", zarr_format=fmt)
    for level, (shape, dtype) in enumerate(zip(plan.shapes, plan.dtypes)):
        names = {"dimension_names": plan.axes} if fmt == 3 else {}
        group.create_array(str(level), shape=shape, dtype=np.dtype(dtype),
                           chunks=plan.level_chunks(level), fill_value=0, overwrite=True,
                           **names)


def _complete(root: Path, plan: Plan) -> bool:
    import zarr
    try:
        group = zarr.open_group(str(root), mode="r")
    except (FileNotFoundError, ValueError, KeyError):
        return False
    return dict(group.attrs) == _attributes(plan)


def _finish(root: Path, plan: Plan) -> None:
    import zarr
    group = zarr.open_group(str(root), mode="r+")
    group.attrs.update(_attributes(plan))
    shutil.rmtree(root / PROGRESS)


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _attributes(plan: Plan) -> dict:
    """The group's OME-NGFF ``multiscales`` attributes."""
    axes = [{"name": n, "type": AXIS_TYPES.get(n, "space")} for n in plan.axes]
    scale = [1.0] * len(plan.axes)
    translation = [0.0] * len(plan.axes)
    datasets = []
    for level in range(len(plan.shapes)):
        if level:
            translation = [t + 0.5 * (f - 1) * s for t, f, s in zip(translation, plan.factors, scale)]
            scale = [s * f for s, f in zip(scale, plan.factors)]
        datasets.append({"path": str(level), "coordinateTransformations": [
            {"type": "scale", "scale": list(scale)},
            {"type": "translation", "translation": list(translation)}]})
    multiscale = {"name": "image", "axes": axes, "datasets": datasets, "type": plan.op,
                  "metadata": {"method": "ndpool.coarsen", "kwargs": {
                      "op": plan.op, "boundary": "pad", "factors": list(plan.factors)}}}
    if plan.ngff == "0.4":
        return {"multiscales": [{"version": "0.4", **multiscale}]}
    return {"ome": {"version": "0.5", "multiscales": [multiscale]}}


# -------------------------------------------------------------------- the chunks
def _write_level(data, root: Path, plan: Plan, level: int, bar) -> None:
    import zarr
    marks = root / PROGRESS / str(level)
    marks.mkdir(parents=True, exist_ok=True)
    done = set(os.listdir(marks))
    todo = [index for index in plan.grid(level) if _key(index) not in done]
    bar.level(level, len(done))
    if not todo:
        return
    target = zarr.open_array(str(root / str(level)), mode="r+")
    if level == 0 and _same_encoding(data, target):
        source_dir = Path(data.store.root) / data.path
        args = (str(source_dir), str(root / "0"), str(marks), target.metadata)
        with ThreadPoolExecutor(max(1, get_num_threads())) as pool:
            for future in as_completed([pool.submit(_copy_chunk, i, *args) for i in todo]):
                bar.update(future.result())
        return
    if level == 0 and not _is_zarr(data):
        source = data                    # in this process: NumPy, a memmap or Dask
        client = None
    else:
        source = data if level == 0 else zarr.open_array(str(root / str(level - 1)), mode="r")
        client = _client()
    factors = (1,) * len(plan.factors) if level == 0 else plan.factors
    args = (source, target, str(marks), plan.level_chunks(level), factors, plan.op)
    if client is not None:
        from distributed import as_completed as completed
        futures = [client.submit(_write_chunk, index, *args, pure=False) for index in todo]
        for future in completed(futures):
            bar.update(future.result())
            future.release()
        return
    with ThreadPoolExecutor(max(1, get_num_threads())) as pool:
        for future in as_completed([pool.submit(_write_chunk, index, *args) for index in todo]):
            bar.update(future.result())


def _client():
    """The active ``dask.distributed`` client, if any."""
    import sys
    if "distributed" not in sys.modules:
        return None
    from distributed import get_client
    try:
        return get_client()
    except ValueError:
        return None


def _same_encoding(source, target) -> bool:
    """Whether level 0's chunks are the source's own files: a local zarr v3 source of the
    same shape, dtype, chunks, codecs, fill value and chunk keys (no shards)."""
    if not _is_zarr(source) or getattr(source.store, "root", None) is None:
        return False
    mine, theirs = target.metadata, source.metadata
    return (theirs.zarr_format == 3 and source.shards is None and source.shape == target.shape
            and source.dtype == target.dtype and source.chunks == target.chunks
            and theirs.codecs == mine.codecs and theirs.fill_value == mine.fill_value
            and theirs.chunk_key_encoding == mine.chunk_key_encoding)


def _copy_chunk(index, source_dir, target_dir, marks, metadata) -> int:
    """Chunk ``index`` copied as bytes (through a temporary file, so it lands whole),
    then its marker; a chunk the source never stored stays absent."""
    key = metadata.encode_chunk_key(index)
    source, target = Path(source_dir) / key, Path(target_dir) / key
    nbytes = 0
    if source.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + ".tmp")
        shutil.copyfile(source, temporary)
        os.replace(temporary, target)
        nbytes = math.prod(s.stop - s.start for s in _chunk_slices(index, metadata)) * \
            np.dtype(metadata.data_type.to_native_dtype()).itemsize
    elif target.exists():
        target.unlink()
    os.close(os.open(os.path.join(marks, _key(index)), os.O_CREAT | os.O_WRONLY, 0o644))
    return nbytes


def _chunk_slices(index, metadata):
    chunks = metadata.chunk_grid.chunk_shape
    return tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, chunks, metadata.shape))


def _key(index) -> str:
    return ".".join(map(str, index))


def _write_chunk(index, source, target, marks, chunks, factors, op) -> int:
    """Chunk ``index`` of ``target`` from the region of ``source`` that its blocks cover;
    then its marker. Returns the bytes written."""
    out = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, chunks, target.shape))
    region = tuple(slice(s.start * f, min(s.stop * f, n))
                   for s, f, n in zip(out, factors, source.shape))
    block = source[region]
    if is_dask(block):
        block = block.compute(scheduler="sync")
    with capped(1):
        block = np.asarray(block)
        if any(f > 1 for f in factors):
            block = coarsen(block, factors, op, boundary="pad")
    target[out] = block.astype(target.dtype, copy=False)
    os.close(os.open(os.path.join(marks, _key(index)), os.O_CREAT | os.O_WRONLY, 0o644))
    return block.nbytes


class _Bar:
    """A tqdm bar of chunks done over every level, with MB/s written; silent without tqdm."""

    def __init__(self, show: bool, plan: Plan):
        self.bar = None
        self.total = sum(sum(1 for _ in plan.grid(k)) for k in range(len(plan.shapes)))
        self.levels = len(plan.shapes)
        self.written = 0
        if show:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=self.total, unit="chunk", desc=NAME)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()

    def level(self, level: int, done: int) -> None:
        if self.bar is not None:
            self.bar.set_description(f"{NAME} level {level + 1}/{self.levels}")
            self.bar.update(done)

    def update(self, nbytes: int) -> None:
        self.written += nbytes
        if self.bar is not None:
            self.bar.update(1)
            seconds = max(self.bar.format_dict["elapsed"], 1e-9)
            self.bar.set_postfix_str(f"{self.written / seconds / 1e6:.0f} MB/s written",
                                     refresh=False)
