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


def test_variants_picture(tmp_path, capsys):
    assert run_demo("--variants", "--out", str(tmp_path)) == 0
    path = tmp_path / demo.VARIANTS_FILE
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        width, height = image.size
    assert 1200 <= width <= 4000 and 400 <= height <= 1000, image.size
    printed = capsys.readouterr().out
    assert str(path) in printed and "stochastic_pool2d" in printed
    assert not any((tmp_path / name).exists() for name in demo.FILES.values())


def test_variants_on_a_colour_input(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "colour.png"
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8), "RGB").save(path)
    assert run_demo("--variants", "--input", str(path), "--out", str(tmp_path)) == 0
    assert (tmp_path / demo.VARIANTS_FILE).is_file()


def test_variant_grids_are_ndpool_results():
    x = demo.textbook()["x"][None, None]
    grids = list(demo.variant_grids().values())
    assert len(grids) == len(demo.VARIANTS)
    np.testing.assert_array_equal(grids[1], ndpool.stochastic_pool2d(x, 2, rng=0)[0, 0])
    np.testing.assert_array_equal(grids[2], ndpool.stochastic_pool2d(x, 2, training=False)[0, 0])
    np.testing.assert_array_equal(grids[3], ndpool.blur_pool2d(x, 3, 2)[0, 0])
    np.testing.assert_array_equal(grids[5], ndpool.global_gem_pool(x, keepdims=True)[0, 0])
    # the pyramid: level 1 (the max, 6), a blank column, level 2 (the 2x2 max pool)
    pyramid = grids[6]
    assert pyramid[0, 0] == 6 and np.isnan(pyramid[:, 1]).all() and np.isnan(pyramid[1, 0])
    np.testing.assert_array_equal(grids[7], ndpool.soft_pool2d(x, 2)[0, 0])
    np.testing.assert_array_equal(grids[8], ndpool.attention_pool2d(x, 2 * x, 2)[0, 0])
    np.testing.assert_array_equal(grids[9], ndpool.median_pool2d(x, 2)[0, 0])
    np.testing.assert_array_equal(pyramid[:, 2:], [[4, 5], [3, 6]])
    # by hand: window (0, 0) holds 1, 3, 4, 2: sum(x^2) / sum(x) = 30 / 10
    assert grids[2][0, 0] == 3


def test_a_variant_is_one_row_of_the_table(monkeypatch):
    """What the other variant sessions rely on: one more (title, op) row, one more column."""
    image = demo.builtin_image(32)
    before = len(demo.variants_figure(image).axes)
    monkeypatch.setattr(demo, "VARIANTS", demo.VARIANTS + (
        ("min_pool2d(x, {k})", lambda x, k: ndpool.min_pool2d(x, k)),))
    assert len(demo.variants_figure(image).axes) == before + 2
    assert "min_pool2d(x, 2)" in demo.variant_grids()
