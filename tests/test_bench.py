"""The benchmark harness runs end to end at a tiny scale; no timing is asserted."""
import math
import re
import sys

import pytest

from ndpool import bench

# scale 0.0001: batch 1 in every config
QUICK = ["--scale", "0.0001", "--configs", "small_max,global_avg", "--repeats", "1",
         "--backend", "reference", "--bandwidth-mb", "8", "--threads", "1,2"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RATIOS = ("ndpool/PyTorch", "ndpool/PyTorch best", "ndpool/bound", "PyTorch/bound")


def results_table(text, starts="| config | op | pass"):
    """The rows of the table whose header line starts with ``starts`` (default: the main
    table)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(starts))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))))
    return header, rows


def positive_finite(cell):
    return math.isfinite(float(cell)) and float(cell) > 0


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
    code = bench.main(QUICK + ["--threads", "1", "--passes", "forward",
                               "--output", str(output)])
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


def test_rejects_unknown_config(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--configs", "nope"])
    assert "unknown config nope" in capsys.readouterr().err


def test_scale_keeps_a_batch_of_at_least_one():
    assert bench.CONFIGS["vgg_max"].scaled_shape(1e-6) == (1, 64, 224, 224)
    assert bench.CONFIGS["stem"].scaled_shape(0.5) == (16, 64, 112, 112)


TINY = QUICK + ["--configs", "global_avg", "--threads", "1", "--passes", "forward",
                "--layouts", "channels_first"]


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
