"""`ndpool demo`: it writes readable PNGs, its textbook numbers are ndpool's, bad paths fail cleanly."""
import argparse

import numpy as np
import pytest

import ndpool
from ndpool import demo

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_demo(*argv):
    parser = argparse.ArgumentParser(prog="ndpool demo")
    demo.add_arguments(parser)
    return demo.run(parser.parse_args(list(argv)))


def assert_pictures(folder, capsys):
    printed = capsys.readouterr().out
    for name in demo.FILES.values():
        path = folder / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(path) as image:
            width, height = image.size
        assert 600 <= width <= 3000 and 300 <= height <= 2000, (name, image.size)
        assert str(path) in printed


def test_builtin_image_makes_all_pictures(tmp_path, capsys):
    assert run_demo("--out", str(tmp_path / "new" / "folder")) == 0
    assert_pictures(tmp_path / "new" / "folder", capsys)


def test_command_line_entry(tmp_path, capsys):
    pytest.importorskip("ndpool.bench")       # cli imports both subcommands
    from ndpool import cli

    assert cli.main(["demo", "--out", str(tmp_path)]) == 0
    assert_pictures(tmp_path, capsys)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_input_image(tmp_path, capsys, mode):
    rng = np.random.default_rng(0)
    shape = (40, 56) if mode == "L" else (40, 56, 3)
    path = tmp_path / f"small_{mode}.png"
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    assert run_demo("--input", str(path), "--out", str(tmp_path)) == 0
    assert_pictures(tmp_path, capsys)
    image = demo.load_image(path)
    assert image.shape == ((40, 56) if mode == "L" else (3, 40, 56))


@pytest.mark.parametrize("argv, message", [
    (["--input", "{tmp}/missing.png"], "no such file"),
    (["--input", "{tmp}"], "is a folder"),
    (["--input", "{tmp}/notes.png"], "not an image"),
    (["--out", "{tmp}/notes.png"], "is a file, not a folder"),
])
def test_bad_paths_fail_cleanly(tmp_path, capsys, argv, message):
    (tmp_path / "notes.png").write_text("not a picture")
    assert run_demo(*(a.format(tmp=tmp_path) for a in argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("ndpool demo: ") and message in err and "Traceback" not in err


def test_textbook_numbers_are_ndpool_results():
    book = demo.textbook()
    x = book["x"][None, None]
    y, indices = ndpool.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(book["max"], y[0, 0])
    np.testing.assert_array_equal(book["indices"], indices[0, 0])
    np.testing.assert_array_equal(book["avg"], ndpool.avg_pool2d(x, 2)[0, 0])
    # by hand: the first maximum wins, tied maxima share, the mean spreads dy / 4
    np.testing.assert_array_equal(book["max"], [[4, 5], [3, 6]])
    np.testing.assert_array_equal(book["avg"], [[2.5, 2.25], [1.75, 3.5]])
    np.testing.assert_array_equal(book["dx_first"][2:, 2:], [[4, 0], [0, 0]])
    np.testing.assert_array_equal(book["dx_split"][2:, 2:], [[2, 2], [0, 0]])
    np.testing.assert_array_equal(book["dx_avg"], np.kron(book["dy"], np.ones((2, 2))) / 4)
    # the grid must hold a tie, or the split picture teaches nothing
    assert not np.array_equal(book["dx_first"], book["dx_split"])
    text = demo.textbook_text(book)
    assert "2.25" in text and 'ties="split"' in text
