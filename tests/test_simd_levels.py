"""Every SIMD level this machine runs: the dispatch picks the best one, NDPOOL_SIMD forces a
lower one (or fails the import with a message that says why), and the compiled-vs-reference
property tests and the fast-path tests pass at every level, each in a sub-process (the level
is fixed when the core is imported)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ndpool
from oracle import available_backends

pytestmark = pytest.mark.skipif("compiled" not in available_backends(),
                                reason="the compiled core is not built")

INFO = ndpool.show_config(mode="dict")
HERE = Path(__file__).resolve().parent
OTHER_LEVELS = [level for level in INFO["simd_supported"]
                if level in INFO["simd_built"] and level != INFO["simd"]]


def _python(code: str, **env):
    environment = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environment, timeout=300)


def test_the_best_level_built_and_supported_is_in_use():
    usable = [level for level in INFO["simd_built"] if level in INFO["simd_supported"]]
    assert INFO["simd_built"][0] == "baseline"
    if not INFO["simd_forced"]:
        assert INFO["simd"] == usable[-1]
    assert isinstance(INFO["threads"], int) and INFO["threads"] >= 1


def test_show_config_prints_the_levels(capsys):
    assert ndpool.show_config() is None
    text = capsys.readouterr().out
    assert f"SIMD level in use: {INFO['simd']}" in text
    assert "SIMD levels built: " + ", ".join(INFO["simd_built"]) in text
    with pytest.raises(ValueError, match="show_config: mode='table' is not one of"):
        ndpool.show_config(mode="table")


@pytest.mark.parametrize("level", INFO["simd_supported"])
def test_forcing_a_level_the_cpu_has(level):
    result = _python("import ndpool; print(ndpool.show_config(mode='dict')['simd'])",
                     NDPOOL_SIMD=level)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == level


@pytest.mark.parametrize("value, message", [
    ("sse9", "NDPOOL_SIMD='sse9' is not a SIMD level; the names are baseline, avx2, avx512, neon"),
    ("AVX2", "NDPOOL_SIMD='AVX2' is not a SIMD level"),
])
def test_an_unknown_level_stops_the_import(value, message):
    result = _python("import ndpool", NDPOOL_SIMD=value)
    assert result.returncode != 0
    assert message in result.stderr


def test_a_level_the_cpu_or_build_lacks_stops_the_import():
    missing = [level for level in ("baseline", "avx2", "avx512", "neon")
               if level not in INFO["simd_supported"]]
    if not missing:
        pytest.skip("this CPU runs every level")
    result = _python("import ndpool", NDPOOL_SIMD=missing[0])
    assert result.returncode != 0
    assert f"NDPOOL_SIMD='{missing[0]}'" in result.stderr
    assert "this CPU lacks" in result.stderr or "was not built" in result.stderr


# one sub-process per level and file: pytest-xdist's workers share them out
LEVEL_FILES = ("test_compiled_property.py", "test_fastpaths.py", "test_threads.py")


@pytest.mark.parametrize("name", LEVEL_FILES)
@pytest.mark.parametrize("level", OTHER_LEVELS or ["(none)"])
def test_property_and_fast_path_tests_pass_at_every_other_level(level, name):
    if level == "(none)":
        pytest.skip(f"{INFO['simd']} is the only level this machine runs")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-p", "no:xdist", str(HERE / name)], capture_output=True,
                            text=True, timeout=900, env={**os.environ, "NDPOOL_SIMD": level},
                            cwd=HERE.parent)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout.splitlines()[-1]
