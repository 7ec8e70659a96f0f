"""ndpool: pooling layers for NumPy, forward and backward, exact to PyTorch.

>>> import numpy as np, ndpool
>>> x = np.array([[[[1.0, 2, 5, 6], [3, 4, 7, 8], [0, 0, 1, 1], [0, 9, 1, 1]]]])
>>> ndpool.max_pool2d(x, 2)
array([[[[4., 8.],
         [9., 1.]]]])
"""
from . import nn
from ._config import show_config
from ._threads import block_threads, get_num_threads, set_num_threads
from .autodiff import vjp
from .backends import use_backend
from .coarsening import coarsen
from .functional import *  # noqa: F401,F403  the per-rank ops
from .functional import __all__ as _ops
from .pyramids import pyramid

__version__ = "0.1.0"
__all__ = list(_ops) + ["vjp", "nn", "use_backend", "set_num_threads", "get_num_threads",
           "show_config", "block_threads", "coarsen", "pyramid"]
