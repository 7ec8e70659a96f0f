"""Every docstring example in the installed package runs and prints what it shows."""
import doctest
import importlib
import pkgutil

import pytest

import ndpool

MODULES = sorted(m.name for m in pkgutil.walk_packages(ndpool.__path__, "ndpool."))


@pytest.mark.parametrize("name", ["ndpool"] + MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
