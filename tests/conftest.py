"""Shared fixtures: tests/ on sys.path (for ``oracle``) and the ``backend`` parameter."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from oracle import available_backends  # noqa: E402


@pytest.fixture(params=available_backends())
def backend(request):
    """Every backend this build has: "reference" always, "compiled" when the core is in."""
    return request.param
