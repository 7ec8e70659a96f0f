"""Pyramid of a zarr volume: ndpool.pyramid against a dask.array.coarsen chain and a
TensorStore downsample chain, each writing the same levels (0 to 3, 2x2x2 means) as zarr v3
with the same chunks and codec (bytes + zstd level 0, zarr-python's default), each run in a
subprocess of its own so that its peak RSS is its own.

    python benchmarks/bigdata.py            # a 1 GB float32 volume
    python benchmarks/bigdata.py --gb 16    # the issue's bar

Reports seconds, GB/s (source bytes over the wall time of the whole job, level 0's copy
included) and peak RSS; ndpool's levels are checked against the others' at the end.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CODECS = [{"name": "bytes", "configuration": {"endian": "little"}},
          {"name": "zstd", "configuration": {"level": 0, "checksum": False}}]


def make_volume(path: Path, side: int, chunk: int) -> None:
    import zarr
    volume = zarr.create_array(str(path), shape=(side,) * 3, chunks=(chunk,) * 3,
                               dtype=np.float32, fill_value=0)
    z = np.arange(side, dtype=np.float32)
    for start in range(0, side, chunk):    # one slab of chunks at a time: smooth plus noise
        stop = min(start + chunk, side)
        rng = np.random.default_rng(start)
        slab = rng.random((stop - start, side, side), dtype=np.float32)
        slab += np.sin(z[start:stop, None, None] / 17) + np.cos(z[None, :, None] / 23)
        volume[start:stop] = slab


def run_ndpool(source: str, out: str, levels: int, chunk: int) -> None:
    import ndpool
    ndpool.pyramid(source, out, levels=levels, min_size=1, chunks=chunk, progress=False)


def run_dask(source: str, out: str, levels: int, chunk: int) -> None:
    import dask.array as da
    import zarr
    group = zarr.open_group(out, mode="w")
    previous = da.from_zarr(source)
    for level in range(levels):
        if level:
            previous = da.coarsen(np.mean, previous, {0: 2, 1: 2, 2: 2}, trim_excess=False)
            previous = previous.astype(np.float32).rechunk(chunk)
        target = group.create_array(str(level), shape=previous.shape, dtype=np.float32,
                                    chunks=(chunk,) * 3, fill_value=0)
        da.store(previous, target, lock=False)
        previous = da.from_zarr(target)    # the next level reads this one back


def run_tensorstore(source: str, out: str, levels: int, chunk: int) -> None:
    import tensorstore as ts
    previous = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": source}}).result()
    for level in range(levels):
        if level:
            previous = ts.downsample(previous, [2, 2, 2], "mean")
        target = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": f"{out}/{level}"},
                          "metadata": {"shape": list(previous.shape), "data_type": "float32",
                                       "chunk_grid": {"name": "regular",
                                                      "configuration": {"chunk_shape": [chunk] * 3}},
                                       "codecs": CODECS, "fill_value": 0}},
                         create=True, delete_existing=True).result()
        target.write(previous).result()
        previous = target


RUNNERS = {"ndpool": run_ndpool, "dask": run_dask, "tensorstore": run_tensorstore}


def timed(name: str, source: Path, out: Path, levels: int, chunk: int):
    """Seconds and peak RSS (bytes) of one runner in a fresh interpreter."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, __file__, "--child", name, str(source), str(out),
               str(levels), str(chunk)]
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{name} failed with status {done.returncode}")
    return seconds, int(done.stdout.split()[-1])


def peak_rss() -> int:
    """This process's own peak RSS in bytes: VmHWM of its address space. (Its rusage
    maxrss would not do: Linux carries the forked parent's high-water mark through exec,
    so every child would report at least the parent's peak.)"""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def check(outs: dict, levels: int) -> None:
    import zarr
    for name, out in outs.items():
        if name == "ndpool":
            continue
        for level in range(levels):   # slab by slab: a level may not fit in memory
            a = zarr.open_array(str(outs["ndpool"] / str(level)))
            b = zarr.open_array(str(out / str(level)))
            step = max(1, a.chunks[0])
            same = a.shape == b.shape and all(
                np.allclose(a[i:i + step], b[i:i + step], rtol=1e-5, atol=1e-6)
                for i in range(0, a.shape[0], step))
            if not same:
                print(f"  level {level} of {name} differs from ndpool's", file=sys.stderr)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="source volume size in GB (1)")
    parser.add_argument("--levels", type=int, default=4, help="levels, the source included (4)")
    parser.add_argument("--chunk", type=int, default=128, help="chunk side (128)")
    parser.add_argument("--dir", default=None, help="where the stores go (a temporary folder)")
    parser.add_argument("--only", default=",".join(RUNNERS), help="comma-separated runners")
    parser.add_argument("--keep", action="store_true", help="keep the stores")
    args = parser.parse_args(argv)
    side = int(round((args.gb * 1e9 / 4) ** (1 / 3) / args.chunk)) * args.chunk
    root = Path(args.dir or tempfile.mkdtemp(prefix="ndpool-bigdata-"))
    root.mkdir(parents=True, exist_ok=True)
    source = root / "source.zarr"
    if not source.exists():
        make_volume(source, side, args.chunk)
    gb = side ** 3 * 4 / 1e9
    print(f"source {side}^3 float32 = {gb:.2f} GB, chunks {args.chunk}^3, {args.levels} levels, "
          f"{os.cpu_count()} CPUs")
    outs = {}
    for name in args.only.split(","):
        outs[name] = root / f"{name}.zarr"
        seconds, rss = timed(name, source, outs[name], args.levels, args.chunk)
        print(f"  {name:12s} {seconds:8.1f} s  {gb / seconds:6.3f} GB/s  peak RSS {rss / 2**20:7.0f} MiB",
              flush=True)
    if "ndpool" in outs:
        check(outs, args.levels)
    if not args.keep and args.dir is None:
        shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        name, source, out, levels, chunk = sys.argv[2:7]
        RUNNERS[name](source, out, int(levels), int(chunk))
        print(peak_rss())
        sys.exit(0)
    sys.exit(main())
