"""Every `>>>` example in docs/*.md and README.md runs and prints what the page shows."""
import doctest
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_examples(page):
    text = page.read_text(encoding="utf-8")
    if "import torch" in text and importlib.util.find_spec("torch") is None:
        pytest.skip("the page compares with PyTorch, which is not installed")
    if "import jax" in text and importlib.util.find_spec("ndpool_jax_ffi") is None:
        pytest.skip("the page runs ndpool.jax, whose handler is not installed (pip install ./jax-ffi)")
    result = doctest.testfile(str(page), module_relative=False, encoding="utf-8",
                              optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0
