"""The benchmark harness runs end to end at a tiny scale; no timing is asserted."""
import math
import re
import sys

import pytest

from ndpool import bench

QUICK = ["--scale", "0.02", "--configs", "small_max,global_avg", "--repeats", "1",
         "--backend", "reference", "--bandwidth-mb", "8", "--threads", "1,2"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def results_table(text):
    """The rows of the results table (the one that starts with the ``config | op`` header)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| config | op | pass"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))))
    return header, rows


def positive_finite(cell):
    return math.isfinite(float(cell)) and float(cell) > 0


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
        for column in ("ndpool ms", "PyTorch ms", "bound ms", "ndpool/PyTorch",
                       "ndpool/bound", "PyTorch/bound"):
            assert positive_finite(row[column]), (column, row)


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
        assert row["PyTorch ms"] == row["ndpool/PyTorch"] == row["PyTorch/bound"] == ""
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
