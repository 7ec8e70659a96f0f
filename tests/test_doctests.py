"""Every docstring example in the installed package runs and prints what it shows."""
import doctest
import importlib
import importlib.util
import pkgutil

import pytest

import ndpool

MODULES = sorted(m.name for m in pkgutil.walk_packages(ndpool.__path__, "ndpool."))


@pytest.mark.parametrize("name", ["ndpool"] + MODULES)
def test_docstring_examples(name):
    torch_examples = name.startswith("ndpool.torch") or name == "ndpool.arrays.dlpack"
    if torch_examples and importlib.util.find_spec("torch") is None:
        pytest.skip(f"the examples of {name} need torch, which is not installed")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
