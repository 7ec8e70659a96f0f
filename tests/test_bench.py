"""The benchmark harness runs end to end at a tiny scale; no timing is asserted."""
import argparse
import importlib.util
import math
import re
import sys
import time

import numpy as np
import pytest

from ndpool import _naive, bench

# scale 0.0001: batch 1 in the main table, a 20x20 image and a 24^3 volume in the science
# table, a (1, 1, 64, 64) input for the naive loop
QUICK = ["--scale", "0.0001", "--configs", "small_max,global_avg", "--repeats", "1",
         "--backend", "reference", "--bandwidth-mb", "8", "--threads", "1,2"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RATIOS = ("ndpool/PyTorch", "ndpool/PyTorch best", "ndpool/bound", "PyTorch/bound")
NAIVE_LINE = re.compile(r"ndpool is ([0-9.e+]+)× faster than the naive four-loop max "
                        r"pooling \(forward\), ([0-9.e+]+)× \(backward\)")


def results_table(text, starts="| config | op | pass"):
    """The rows of the table whose header line starts with ``starts`` (default: the main
    table; ``SCIENCE`` for the science table)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(starts))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))))
    return header, rows


SCIENCE = "| config | op | threads"


def positive_finite(cell):
    return math.isfinite(float(cell)) and float(cell) > 0


def parse(argv):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module", autouse=True)
def short_warm_ups():
    """Warm-ups only steady timings, which no test asserts; at 30 ms per function per
    measurement they would be most of this file's run time."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench, "WARM_SECONDS", 0.001)
        yield


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("bench")
    output, picture = folder / "RESULTS.md", folder / "ratios.png"
    code = bench.main(QUICK + ["--output", str(output), "--plot", str(picture)])
    return code, output, picture


def test_writes_table_with_every_row_and_column(quick_run):
    code, output, _ = quick_run
    assert code == 0
    header, rows = results_table(output.read_text())
    assert tuple(header) == bench.COLUMNS
    expected = {(config, pass_, layout, str(threads))
                for config in ("small_max", "global_avg") for pass_ in bench.PASSES
                for layout in bench.LAYOUTS for threads in (1, 2)}
    assert {(r["config"], r["pass"], r["layout"], r["threads"]) for r in rows} == expected
    assert len(rows) == len(expected)
    for row in rows:
        for column in ("ndpool ms", "PyTorch ms", "PyTorch best ms", "bound ms") + RATIOS:
            assert positive_finite(row[column]), (column, row)


def test_pytorch_best_is_the_best_at_up_to_the_rows_thread_count(quick_run):
    _, rows = results_table(quick_run[1].read_text())
    for row in rows:
        same = [r for r in rows if (r["config"], r["pass"], r["layout"]) ==
                (row["config"], row["pass"], row["layout"])
                and int(r["threads"]) <= int(row["threads"])]
        assert float(row["PyTorch best ms"]) == min(float(r["PyTorch ms"]) for r in same)


def test_summary_gives_geometric_means_and_worst_rows(quick_run):
    text = quick_run[1].read_text()
    assert re.search(r"Geometric means over the table: ndpool/bound [0-9.e+]+, "
                     r"ndpool/PyTorch [0-9.e+]+, ndpool/PyTorch best [0-9.e+]+\.", text)
    assert re.search(r"Worst ndpool/PyTorch best: [0-9.e+]+ \((small_max|global_avg) "
                     r"(forward|backward) channels_(first|last), [12] threads?\)\.", text)
    assert re.search(r"Worst ndpool/bound: 1 thread [0-9.e+]+ \([^)]+\); "
                     r"2 threads [0-9.e+]+ \([^)]+\)\.", text)


def test_header_names_machine_versions_and_bandwidth(quick_run):
    text = quick_run[1].read_text()
    assert bench.cpu_name() in text and "backend `reference`" in text
    assert "PyTorch 2." in text and "NumPy" in text and "threads: 1, 2" in text
    simd = bench.simd_config()
    assert f"- SIMD: `{simd['simd']}` in use (built: {', '.join(simd['simd_built'])}" in text
    bandwidth_line = next(line for line in text.splitlines() if "memory bandwidth" in line)
    bandwidths = [float(b) for b in re.findall(r"([0-9.]+) GB/s", bandwidth_line)]
    assert len(bandwidths) == 2 and all(b > 0 and math.isfinite(b) for b in bandwidths)


def test_plot_is_a_png(quick_run):
    picture = quick_run[2]
    assert picture.read_bytes()[:8] == PNG_SIGNATURE
    assert picture.stat().st_size > 10_000


def test_bandwidth_is_positive():
    assert bench.measure_bandwidth(2, megabytes=4, repeats=1) > 0


def test_runs_without_torch_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)     # import torch -> ImportError
    output = tmp_path / "RESULTS.md"
    code = bench.main(QUICK + ["--threads", "1", "--passes", "forward", "--science", "volume",
                               "--no-naive", "--output", str(output)])
    assert code == 0
    assert "PyTorch is not installed" in capsys.readouterr().err
    text = output.read_text()
    assert "PyTorch not installed" in text
    _, rows = results_table(text)
    assert len(rows) == 4
    for row in rows:
        assert row["PyTorch ms"] == row["PyTorch best ms"] == row["ndpool/PyTorch"] == ""
        assert row["ndpool/PyTorch best"] == row["PyTorch/bound"] == ""
        assert positive_finite(row["ndpool/bound"])
    _, science = results_table(text, SCIENCE)
    assert {r["config"] for r in science} == {"volume 24³"}
    for row in science:
        assert row["PyTorch ms"] == row["PyTorch best ms"] == row["ndpool/PyTorch best"] == ""
        assert positive_finite(row["peer ms"]) and positive_finite(row["ndpool/peer"])


def test_rejects_unknown_config(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--configs", "nope"])
    assert "unknown config nope" in capsys.readouterr().err


def test_scale_keeps_a_batch_of_at_least_one():
    assert bench.CONFIGS["vgg_max"].scaled_shape(1e-6) == (1, 64, 224, 224)
    assert bench.CONFIGS["stem"].scaled_shape(0.5) == (16, 64, 112, 112)


ONE_ROW = QUICK + ["--configs", "global_avg", "--threads", "1", "--passes", "forward",
                   "--layouts", "channels_first"]
TINY = ONE_ROW + ["--science", "none", "--no-naive"]


def test_plain_progress_lines_without_tqdm(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    assert bench.main(TINY + ["--output", str(tmp_path / "r.md")]) == 0
    assert "[1/1] global_avg forward channels_first 1t" in capsys.readouterr().err


def test_plot_without_matplotlib_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code = bench.main(TINY + ["--output", str(tmp_path / "r.md"),
                              "--plot", str(tmp_path / "r.png")])
    assert code == 1 and "ndpool[plot]" in capsys.readouterr().err
    assert (tmp_path / "r.md").exists() and not (tmp_path / "r.png").exists()


# ------------------------------------------------------------- one image, one volume
def expected_science_rows(groups, threads):
    """(config, op, threads, peer) of every science row the tiny scale gives."""
    has_scipy = importlib.util.find_spec("scipy") is not None
    filters = {"max": "maximum_filter", "min": "minimum_filter", "avg": "uniform_filter"}
    rows = set()
    for n in threads:
        if "image" in groups:
            rows |= {("image 20×20", f"{op} k{k} s1 same", str(n),
                      f"scipy {filters[op]}" if has_scipy else "")
                     for k in bench.IMAGE_WINDOWS for op in bench.IMAGE_OPS}
        if "volume" in groups:
            peers = ["NumPy reshape"] + ["skimage block_reduce"] * (
                importlib.util.find_spec("skimage") is not None)
            rows |= {("volume 24³", f"{op} 2×2×2", str(n), peer)
                     for op in ("max", "mean") for peer in peers}
    return rows


def test_science_table_has_every_row_and_column(quick_run):
    header, rows = results_table(quick_run[1].read_text(), SCIENCE)
    assert tuple(header) == bench.SCIENCE_COLUMNS
    assert {(r["config"], r["op"], r["threads"], r["peer name"]) for r in rows} == (
        expected_science_rows(("image", "volume"), (1, 2)))
    for row in rows:
        for column in ("ndpool ms", "PyTorch ms", "PyTorch best ms", "bound ms",
                       "ndpool/PyTorch best", "ndpool/bound"):
            assert positive_finite(row[column]), (column, row)
        if row["peer name"]:
            assert positive_finite(row["peer ms"]) and positive_finite(row["ndpool/peer"])
        if row["threads"] == "1":
            assert row["vs 1 thread"] == ""
        else:
            assert positive_finite(row["vs 1 thread"]), row


def test_science_peers_are_timed_once_and_repeated(quick_run):
    _, rows = results_table(quick_run[1].read_text(), SCIENCE)
    by_case = {}
    for row in rows:
        by_case.setdefault((row["config"], row["op"], row["peer name"]), set()).add(
            row["peer ms"])
    assert all(len(times) == 1 for times in by_case.values())


def test_science_summary_and_note(quick_run):
    text = quick_run[1].read_text()
    assert "## One image, one volume" in text
    assert text.index("## One image, one volume") > text.index("| config | op | pass")
    assert re.search(r"ndpool at 2 threads / at 1 thread: geometric mean [0-9.e+]+, worst "
                     r"[0-9.e+]+ \([^)]+\); the target at 2 threads is at most 0\.6\.", text)
    assert "a speed comparison, not a value check" in text


@pytest.mark.parametrize("choice", ["image", "volume", "none"])
def test_science_option_selects_the_cases(choice, tmp_path):
    pytest.importorskip("torch")
    output = tmp_path / "r.md"
    argv = ONE_ROW + ["--science", choice, "--no-naive", "--output", str(output)]
    assert bench.main(argv) == 0
    text = output.read_text()
    if choice == "none":
        assert "One image, one volume" not in text and SCIENCE not in text
        return
    _, rows = results_table(text, SCIENCE)
    assert {(r["config"], r["op"], r["threads"], r["peer name"]) for r in rows} == (
        expected_science_rows((choice,), (1,)))


def test_science_sides_follow_the_scale():
    assert bench.science_side(2048, 1.0, 2) == 2048
    assert bench.science_side(512, 1.0, 3) == 512
    assert bench.science_side(512, 0.125, 3) == 256
    assert bench.science_side(2048, 1e-9, 2) == 16


def test_pytorch_skipped_past_its_tap_limit():
    torch = pytest.importorskip("torch")
    cases = bench.image_cases(1.0, torch, np.random.default_rng(0))
    untimed = {case.title for case in cases if case.torch_call is None}
    assert untimed == {f"{op} k{k} s1 same" for op in bench.IMAGE_OPS for k in (15, 31, 63)}
    del cases


# --------------------------------------------------------------------- the naive loop
def test_naive_loop_section(quick_run):
    text = quick_run[1].read_text()
    assert "## The textbook's naive loop" in text
    forward, backward = NAIVE_LINE.search(text).groups()
    assert positive_finite(forward) and positive_finite(backward)


@pytest.mark.parametrize("kernel_size, stride", [(2, 2), (3, 2), (3, 1)])
def test_naive_loop_equals_ndpool(kernel_size, stride):
    import ndpool
    # distinct values, so the winner of every window is unique whatever the tie rule
    x = np.random.default_rng(1).permutation(2 * 3 * 9 * 11).astype(np.float64)
    x = x.reshape(2, 3, 9, 11)
    y, pullback = ndpool.vjp(ndpool.max_pool2d, x, kernel_size, stride)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    np.testing.assert_array_equal(_naive.naive_max_pool2d(x, kernel_size, stride), y)
    np.testing.assert_allclose(
        _naive.naive_max_pool2d_backward(x, dy, kernel_size, stride), pullback(dy))


def test_no_naive_leaves_the_section_out(tmp_path):
    output = tmp_path / "r.md"
    assert bench.main(TINY + ["--output", str(output)]) == 0
    assert "naive loop" not in output.read_text()


def test_naive_loop_mismatch_is_a_clear_error(monkeypatch, tmp_path):
    def zeros(x, kernel_size, stride):   # a wrong forward: the check must catch it
        return np.zeros(_naive.output_shape(x.shape, kernel_size, stride), dtype=x.dtype)

    monkeypatch.setattr(_naive, "naive_max_pool2d", zeros)
    argv = ONE_ROW + ["--science", "none", "--naive", "--output", str(tmp_path / "r.md")]
    with pytest.raises(RuntimeError, match="differs from the naive four-loop max pooling"):
        bench.main(argv)


# ----------------------------------------------------------------------- timing rules
def test_long_calls_are_timed_by_at_most_three_calls():
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.02)

    (seconds,) = bench.time_interleaved([slow], None, long_call=0.01)
    assert len(calls) == bench.LONG_CALLS and seconds > 0


# -------------------------------------------------------------------------- --simd
DISPATCH = {"simd": "avx2", "simd_built": ["baseline", "avx2", "avx512"],
            "simd_supported": ["baseline", "avx2"], "threads": 2}


def test_simd_config_without_dispatch_says_native(monkeypatch):
    import ndpool
    monkeypatch.delattr(ndpool, "show_config", raising=False)
    assert bench.simd_config() == {"simd": "native", "simd_built": ["native"],
                                   "simd_supported": ["native"]}


def test_simd_config_asks_show_config(monkeypatch):
    import ndpool
    monkeypatch.setattr(ndpool, "show_config", lambda mode: dict(DISPATCH), raising=False)
    assert bench.simd_config() == DISPATCH


def test_simd_rejects_unknown_level(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--simd", "sse9"])
    error = capsys.readouterr().err
    assert "sse9" in error and all(level in error for level in bench.SIMD_LEVELS)


def test_simd_in_use_runs_here(monkeypatch, tmp_path):
    monkeypatch.setattr(bench, "simd_config", lambda: dict(DISPATCH))
    monkeypatch.setattr(bench.subprocess, "call", lambda *a, **k: pytest.fail("re-ran"))
    output = tmp_path / "r.md"
    assert bench.main(TINY + ["--simd", "avx2", "--output", str(output)]) == 0
    assert "- SIMD: `avx2` in use (built: baseline, avx2, avx512; this CPU runs: " \
           "baseline, avx2)" in output.read_text()


def test_simd_other_level_reruns_in_a_subprocess(monkeypatch, tmp_path):
    monkeypatch.setattr(bench, "simd_config", lambda: dict(DISPATCH))
    seen = {}

    def call(command, env):
        seen.update(command=command, env=env)
        return 7

    monkeypatch.setattr(bench.subprocess, "call", call)
    output = tmp_path / "r.md"
    argv = TINY + ["--output", str(output)]
    assert bench.main(argv + ["--simd", "baseline"]) == 7   # the child's exit code
    assert seen["env"]["NDPOOL_SIMD"] == "baseline"
    assert seen["command"][:4] == [sys.executable, "-m", "ndpool.cli", "bench"]
    assert "--simd" not in seen["command"]
    rerun, original = vars(parse(seen["command"][4:])), vars(parse(argv))
    assert rerun == {**original, "simd": None}
    assert not output.exists()


def test_simd_level_not_built_or_not_runnable_is_an_error(monkeypatch, capsys):
    monkeypatch.setattr(bench, "simd_config", lambda: dict(DISPATCH))
    monkeypatch.setattr(bench.subprocess, "call", lambda *a, **k: pytest.fail("re-ran"))
    assert bench.main(TINY + ["--simd", "neon"]) == 2
    assert "--simd neon is not built into this core (built: baseline, avx2, avx512)" in (
        capsys.readouterr().err)
    assert bench.main(TINY + ["--simd", "avx512"]) == 2
    assert "this CPU cannot run it (it runs: baseline, avx2)" in capsys.readouterr().err


def test_rerun_argv_reproduces_every_option(tmp_path):
    argv = ["--configs", "stem,spp", "--threads", "2,1", "--layouts", "channels_last",
            "--passes", "backward", "--scale", "0.25", "--repeats", "4", "--backend",
            "reference", "--output", str(tmp_path / "o.md"), "--plot", str(tmp_path / "p.png"),
            "--bandwidth-mb", "16", "--science", "image", "--no-naive", "--simd", "neon"]
    args = parse(argv)
    assert set(vars(args)) == set(vars(parse([])))        # the list above names every option
    assert all(vars(args)[name] != value for name, value in vars(parse([])).items())
    assert vars(parse(bench.rerun_argv(args))) == {**vars(args), "simd": None}


def test_a_rerun_keeps_the_sections_other_benchmarks_wrote(tmp_path):
    output = tmp_path / "r.md"
    output.write_text("# old results\n\nstale table\n")
    bench.write_section(output, "resnet18", "ResNet-18 training", ["| a | table |"])
    assert bench.main(TINY + ["--output", str(output)]) == 0
    text = output.read_text()
    assert "stale table" not in text and text.startswith("# ndpool benchmark results")
    assert text.count("<!-- begin section resnet18 -->") == 1
    assert "## ResNet-18 training\n\n| a | table |\n<!-- end section resnet18 -->" in text


def test_revision_only_from_a_checkout_that_tracks_the_module(tmp_path):
    """A results file names the commit it measured, and no other repository's: an installed
    copy can sit inside some unrelated checkout (a pyenv one, say)."""
    import shutil
    import subprocess
    if shutil.which("git") is None:
        pytest.skip("git is not installed")

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "README").write_text("another project\n")
    git("add", "README")
    git("commit", "-q", "-m", "other")
    module = tmp_path / "pkg" / "bench.py"
    module.parent.mkdir()
    module.write_text("# an installed copy, not tracked here\n")
    assert bench._revision(module) == ""
    git("add", "pkg/bench.py")
    git("commit", "-q", "-m", "track it")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tmp_path,
                            capture_output=True, text=True, check=True).stdout.strip()
    assert bench._revision(module) == f" (git {commit})"
    module.write_text("# changed\n")
    assert bench._revision(module) == f" (git {commit}, uncommitted changes)"
