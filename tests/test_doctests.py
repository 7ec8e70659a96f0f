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
    if name.startswith("ndpool.torch") and importlib.util.find_spec("torch") is None:
        pytest.skip("ndpool.torch needs the torch extra, which is not installed")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
