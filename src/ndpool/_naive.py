"""The naive four-loop max pooling that people start from, kept as the benchmark's
"before": pure Python loops over a NumPy array, one window at a time."""
from __future__ import annotations

import itertools

import numpy as np


def _windows(x: np.ndarray, kernel_size: int, stride: int):
    """Every output position (n, c, i, j) in scan order with its input window."""
    batch, channels, height, width = x.shape
    rows = (height - kernel_size) // stride + 1
    columns = (width - kernel_size) // stride + 1
    for n, c, i, j in itertools.product(range(batch), range(channels), range(rows),
                                        range(columns)):
        yield (n, c, i, j), x[n, c, i * stride:i * stride + kernel_size,
                              j * stride:j * stride + kernel_size]


def output_shape(shape, kernel_size: int, stride: int):
    """(N, C, rows, columns) of a valid max pooling.

    >>> output_shape((2, 8, 32, 32), 2, 2)
    (2, 8, 16, 16)
    """
    batch, channels, height, width = shape
    return (batch, channels, (height - kernel_size) // stride + 1,
            (width - kernel_size) // stride + 1)


def naive_max_pool2d(x: np.ndarray, kernel_size: int, stride: int) -> np.ndarray:
    """Max pooling of an (N, C, H, W) array, no padding, written as the four loops.

    >>> x = np.array([[[[1.0, 2, 5, 6], [3, 4, 7, 8], [0, 0, 1, 1], [0, 9, 1, 1]]]])
    >>> naive_max_pool2d(x, 2, 2)
    array([[[[4., 8.],
             [9., 1.]]]])
    """
    y = np.empty(output_shape(x.shape, kernel_size, stride), dtype=x.dtype)
    for position, window in _windows(x, kernel_size, stride):
        y[position] = window.max()
    return y


def naive_max_pool2d_backward(x: np.ndarray, dy: np.ndarray, kernel_size: int,
                              stride: int) -> np.ndarray:
    """dx of ``naive_max_pool2d``: each window's ``dy`` goes to its first maximum in scan
    order (``argmax``), PyTorch's tie rule; overlapping windows add up.

    >>> x = np.array([[[[1.0, 2, 5, 6], [3, 4, 7, 8], [0, 0, 1, 1], [0, 9, 1, 1]]]])
    >>> naive_max_pool2d_backward(x, np.ones((1, 1, 2, 2)), 2, 2)[0, 0]
    array([[0., 0., 0., 0.],
           [0., 1., 0., 1.],
           [0., 0., 1., 0.],
           [0., 1., 0., 0.]])
    """
    dx = np.zeros_like(x)
    for (n, c, i, j), window in _windows(x, kernel_size, stride):
        row, column = np.unravel_index(window.argmax(), window.shape)
        dx[n, c, i * stride + row, j * stride + column] += dy[n, c, i, j]
    return dx
