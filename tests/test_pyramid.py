"""ndpool.pyramid: levels equal the in-memory coarsen chain, NGFF metadata read back by
ome-zarr's reader and validated by ome-zarr-models, resume after SIGKILL, bounded
memory, and the same bytes on a dask.distributed cluster."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import ndpool
from ndpool.pyramids import PROGRESS

zarr = pytest.importorskip("zarr")
# sub-processes import the ndpool under test: the installed package in CI, src/ in a
# development tree (whose compiled core lives there only when built in place)
HOME = str(Path(ndpool.__file__).resolve().parents[1])


def files(root: Path) -> dict:
    """Every file of a store, by relative path: two stores are identical when these are."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def levels(root: Path):
    group = zarr.open_group(str(root), mode="r")
    count = len(group.attrs["ome"]["multiscales"][0]["datasets"]) if "ome" in group.attrs \
        else len(group.attrs["multiscales"][0]["datasets"])
    return [zarr.open_array(str(root / str(k)), mode="r")[:] for k in range(count)]


def chain(x, factors, op, count):
    out = [x]
    for _ in range(count - 1):
        out.append(ndpool.coarsen(out[-1], factors, op, boundary="pad"))
    return out


@pytest.mark.parametrize("op,dtype", [("mean", np.float32), ("max", np.float64), ("mean", np.uint16),
                                      ("median", np.int32), ("sum", np.uint8), ("mode", np.uint8)])
def test_levels_equal_coarsen_chain(tmp_path, op, dtype):
    rng = np.random.default_rng(1)
    x = (rng.random((23, 30, 17)) * 50).astype(dtype)       # odd sizes: partial blocks
    ndpool.pyramid(x, tmp_path / "p.zarr", min_size=3, op=op, chunks=(4, 8, 5), progress=False)
    got = levels(tmp_path / "p.zarr")
    want = chain(x, 2, op, len(got))
    assert [g.shape for g in got] == [(23, 30, 17), (12, 15, 9), (6, 8, 5), (3, 4, 3)]
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        if op == "mean" and x.dtype.kind == "f":   # the core may sum a chunk in another order
            np.testing.assert_allclose(g, w, rtol=1e-6)
        else:
            np.testing.assert_array_equal(g, w)
    assert not (tmp_path / "p.zarr" / PROGRESS).exists()


def test_metadata_read_by_ome_zarr(tmp_path):
    reader = pytest.importorskip("ome_zarr.reader")
    io = pytest.importorskip("ome_zarr.io")
    from ome_zarr_models.v05.image import Image
    x = np.random.default_rng(2).random((2, 40, 33, 20), dtype=np.float32)   # c z y x
    ndpool.pyramid(x, tmp_path / "p.zarr", levels=3, min_size=1, chunks=16, progress=False)
    node = list(reader.Reader(io.parse_url(str(tmp_path / "p.zarr")))())[0]
    assert [d.shape for d in node.data] == [(2, 40, 33, 20), (2, 20, 17, 10), (2, 10, 9, 5)]
    assert [a["name"] for a in node.metadata["axes"]] == ["c", "z", "y", "x"]
    transforms = node.metadata["coordinateTransformations"]
    assert transforms[2] == [{"type": "scale", "scale": [1.0, 4.0, 4.0, 4.0]},
                             {"type": "translation", "translation": [0.0, 1.5, 1.5, 1.5]}]
    np.testing.assert_array_equal(np.asarray(node.data[1]), ndpool.coarsen(x, (1, 2, 2, 2), boundary="pad"))
    Image.from_zarr(zarr.open_group(str(tmp_path / "p.zarr"), mode="r"))   # validates 0.5
    assert zarr.open_array(str(tmp_path / "p.zarr" / "0")).metadata.dimension_names == ("c", "z", "y", "x")


def test_ngff_04_on_zarr_v2(tmp_path):
    from ome_zarr_models.v04.image import Image
    x = np.random.default_rng(3).random((3, 30, 30), dtype=np.float32)
    ndpool.pyramid(x, tmp_path / "p.zarr", levels=2, min_size=1, ngff="0.4", chunks=8,
                   axes=("c", "y", "x"), factors={"x": 3, "y": 2}, progress=False)
    assert (tmp_path / "p.zarr" / ".zattrs").exists() and (tmp_path / "p.zarr" / "1" / ".zarray").exists()
    multiscale = json.loads((tmp_path / "p.zarr" / ".zattrs").read_text())["multiscales"][0]
    assert multiscale["version"] == "0.4"
    assert multiscale["datasets"][1]["coordinateTransformations"][1]["translation"] == [0.0, 0.5, 1.0]
    Image.from_zarr(zarr.open_group(str(tmp_path / "p.zarr"), mode="r"))
    np.testing.assert_array_equal(levels(tmp_path / "p.zarr")[1],
                                  ndpool.coarsen(x, (1, 2, 3), boundary="pad"))


def test_every_source_gives_the_same_store(tmp_path):
    da = pytest.importorskip("dask.array")
    x = np.random.default_rng(4).random((30, 26, 21), dtype=np.float32)
    kw = dict(min_size=4, chunks=8, progress=False)
    ndpool.pyramid(x, tmp_path / "numpy.zarr", **kw)
    ndpool.pyramid(da.from_array(x, chunks=(7, 13, 21)), tmp_path / "dask.zarr", **kw)
    zarr.create_array(str(tmp_path / "src.zarr"), data=x, chunks=(5, 5, 5))
    ndpool.pyramid(str(tmp_path / "src.zarr"), tmp_path / "path.zarr", **kw)
    ndpool.pyramid(zarr.open_array(str(tmp_path / "src.zarr")), tmp_path / "array.zarr", **kw)
    zarr.create_array(str(tmp_path / "same.zarr"), data=x, chunks=(8, 8, 8))   # level 0 copied
    ndpool.pyramid(str(tmp_path / "same.zarr"), tmp_path / "copied.zarr", **kw)  # as bytes
    np.save(tmp_path / "x.npy", x)
    from ndpool.cli import main
    assert main(["pyramid", str(tmp_path / "x.npy"), str(tmp_path / "cli.zarr"), "--min-size", "4",
                 "--chunks", "8", "--quiet"]) == 0
    want = files(tmp_path / "numpy.zarr")
    for name in ("dask", "path", "array", "copied", "cli"):
        assert files(tmp_path / f"{name}.zarr") == want, name


def test_rerun_and_overwrite(tmp_path):
    x = np.random.default_rng(5).random((20, 20), dtype=np.float32)
    out = tmp_path / "p.zarr"
    ndpool.pyramid(x, out, min_size=4, chunks=8, progress=False)
    before = files(out)
    ndpool.pyramid(x, out, min_size=4, chunks=8, progress=False)        # whole: nothing to do
    assert files(out) == before
    with pytest.raises(FileExistsError, match="pyramid: .* is not this pyramid .*overwrite=True"):
        ndpool.pyramid(x, out, min_size=4, op="max", chunks=8, progress=False)
    ndpool.pyramid(x, out, min_size=4, op="max", chunks=8, progress=False, overwrite=True)
    np.testing.assert_array_equal(levels(out)[1], ndpool.coarsen(x, 2, "max", boundary="pad"))


def test_crash_then_rerun_completes_even_over_a_torn_chunk(tmp_path, monkeypatch):
    from ndpool import pyramids
    x = np.random.default_rng(6).random((40, 40, 40), dtype=np.float32)
    kw = dict(min_size=4, chunks=8, progress=False)
    ndpool.pyramid(x, tmp_path / "whole.zarr", **kw)
    real, calls = pyramids._write_chunk, []

    def crashing(index, *args):
        if len(calls) == 140:
            raise KeyboardInterrupt          # stands in for a crash, in level 1
        calls.append(index)
        return real(index, *args)

    monkeypatch.setattr(pyramids, "_write_chunk", crashing)
    monkeypatch.setattr(pyramids, "get_num_threads", lambda: 1)
    out = tmp_path / "cut.zarr"
    with pytest.raises(KeyboardInterrupt):
        ndpool.pyramid(x, out, **kw)
    monkeypatch.undo()
    torn = out / "1" / "c" / "2" / "2" / "2"      # a chunk not marked done: written half
    torn.parent.mkdir(parents=True, exist_ok=True)
    torn.write_bytes(b"\x28\xb5\x2f\xfd half a chunk")
    assert not (out / PROGRESS / "1" / "2.2.2").exists()
    # what a kill during a write leaves: zarr's temporary file and a chunk copy's
    (out / "1" / "c" / "2" / "2" / "1.9cd275cd7ef14e62bb9263171f8caf8b.partial").write_bytes(b"")
    (out / "0" / "c" / "0" / "0" / "0.tmp").write_bytes(b"\x28\xb5")
    with pytest.raises(FileExistsError, match="half-written pyramid of other settings"):
        ndpool.pyramid(x, out, **dict(kw, op="max"))
    ndpool.pyramid(x, out, **kw)
    assert files(out) == files(tmp_path / "whole.zarr")


def _script(body: str) -> list:
    return [sys.executable, "-c", textwrap.dedent(body)]


def _env():
    return dict(os.environ, PYTHONPATH=HOME + os.pathsep + os.environ.get("PYTHONPATH", ""),
                NDPOOL_NUM_THREADS="2")


def test_sigkill_midway_then_rerun_equals_uninterrupted(tmp_path):
    zarr.create_array(str(tmp_path / "src.zarr"), chunks=(16, 16, 16),   # level 0 re-encoded
                      data=np.random.default_rng(7).random((64, 64, 64), dtype=np.float32))
    job = _script(f"""
        import sys, ndpool
        ndpool.pyramid({str(tmp_path / 'src.zarr')!r}, sys.argv[1], min_size=4, chunks=8,
                       progress=False)
    """)
    subprocess.run(job + [str(tmp_path / "whole.zarr")], env=_env(), check=True)
    out = tmp_path / "cut.zarr"
    process = subprocess.Popen(job + [str(out)], env=_env())
    marks, deadline = out / PROGRESS / "0", time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if marks.is_dir() and len(os.listdir(marks)) >= 150:     # of 512 level-0 chunks
            break
        time.sleep(0.01)
    assert process.poll() is None, "the job ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (out / PROGRESS).exists()
    subprocess.run(job + [str(out)], env=_env(), check=True)
    assert files(out) == files(tmp_path / "whole.zarr")


def test_memory_stays_bounded_for_a_volume_several_times_larger(tmp_path):
    """Peak RSS grows by under an eighth of the volume's 128 MiB while it is
    written as four levels: the source is made chunk by chunk, then read the same way."""
    child = _script(f"""
        import resource, sys, numpy as np, zarr, ndpool
        n, c = 320, 32
        source = zarr.create_array({str(tmp_path / 'big.zarr')!r}, shape=(n, n, n),
                                   chunks=(c, c, c), dtype=np.float32)
        for z in range(0, n, c):                       # one slab of chunks at a time
            source[z:z + c] = np.random.default_rng(z).random((c, n, n), dtype=np.float32)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        ndpool.pyramid({str(tmp_path / 'big.zarr')!r}, {str(tmp_path / 'out.zarr')!r},
                       levels=4, min_size=1, chunks=c, progress=False)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(before * 1024, after * 1024)
    """)
    done = subprocess.run(child, env=_env(), check=True, capture_output=True, text=True)
    before, after = map(int, done.stdout.split())
    volume = 320 ** 3 * 4
    print(f"peak RSS grew by {(after - before) / 2**20:.0f} MiB for a {volume / 2**20:.0f} MiB volume")
    assert after - before < volume / 8, (before, after)
    level3 = zarr.open_array(str(tmp_path / "out.zarr" / "3"))
    assert level3.shape == (40, 40, 40)
    part = zarr.open_array(str(tmp_path / "big.zarr"))[:64, :64, :64]
    np.testing.assert_allclose(level3[:8, :8, :8], ndpool.coarsen(part, 8), rtol=1e-6)


def test_local_cluster_writes_the_same_bytes(tmp_path):
    distributed = pytest.importorskip("distributed")
    x = np.random.default_rng(8).random((48, 40, 36), dtype=np.float32)
    zarr.create_array(str(tmp_path / "src.zarr"), data=x, chunks=(16, 16, 16))
    kw = dict(min_size=4, chunks=8, progress=False)
    ndpool.pyramid(str(tmp_path / "src.zarr"), tmp_path / "local.zarr", **kw)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        ndpool.pyramid(str(tmp_path / "src.zarr"), tmp_path / "cluster.zarr", **kw)
        assert len(client.scheduler_info()["workers"]) == 2
    assert files(tmp_path / "cluster.zarr") == files(tmp_path / "local.zarr")


@pytest.mark.parametrize("kwargs,kind,message", [
    (dict(factors=(2, 2, 2)), ValueError, "coarsens axis 'c'; the c and t axes are never downsampled"),
    (dict(axes=("y", "x", "c")), ValueError, "NGFF wants an optional 't'"),
    (dict(op="avg"), ValueError, "op='avg' is not one of"),
    (dict(ngff="0.6"), ValueError, "ngff='0.6' is not one of"),
    (dict(chunks=(4, 4)), ValueError, "chunks=(4, 4) must be an int or 3 ints"),
    (dict(levels=0), ValueError, "levels=0 must be an int of at least 1"),
    (dict(factors=1), ValueError, "coarsens no axis"),
])
def test_bad_arguments(tmp_path, kwargs, kind, message):
    x = np.zeros((2, 8, 8), np.float32)
    with pytest.raises(kind, match="pyramid: .*" + __import__("re").escape(message)):
        ndpool.pyramid(x, tmp_path / "p.zarr", axes=kwargs.pop("axes", ("c", "y", "x")), **kwargs)
    with pytest.raises(ValueError, match="pyramid: source has 1 dims; an NGFF image has 2 to 5"):
        ndpool.pyramid(np.zeros(8), tmp_path / "q.zarr")
