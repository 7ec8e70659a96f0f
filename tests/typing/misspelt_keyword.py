"""A user's mistakes mypy must catch: ``strid`` for ``stride`` (tests/test_typing.py)."""
import numpy as np

import ndpool

x = np.zeros((1, 1, 4, 4))
y = ndpool.max_pool2d(x, 2, strid=2)                      # line 7
out, pullback = ndpool.vjp(ndpool.avg_pool2d, x, 2, strid=2)  # line 8
layer = ndpool.nn.MaxPool2d(2, strid=2)                   # line 9
