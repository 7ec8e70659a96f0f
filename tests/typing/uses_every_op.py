"""A user's file that calls every public name of ndpool; `mypy --strict` must pass on it.

tests/test_typing.py runs mypy on it (and runs it, so that the types it states are true)
and checks that it names every op of ``ndpool.__all__`` and every layer of ``ndpool.nn``.
"""
from __future__ import annotations

import os
import tempfile
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

import ndpool

Array = NDArray[Any]
Indices = NDArray[np.int64]

x1 = np.random.default_rng(0).random((2, 3, 8))
x2 = np.random.default_rng(1).random((2, 3, 8, 8))
x3 = np.random.default_rng(2).random((2, 3, 8, 8, 8))

# -------------------------------------------------------------- sliding-window ops
y: Array = ndpool.max_pool2d(x2, 2)
y = ndpool.max_pool1d(x1, 3, stride=2, padding=1, ceil_mode=True)
y = ndpool.max_pool3d(x3, (2, 2, 2), ties="split")
y = ndpool.min_pool1d(x1, 2)
y = ndpool.min_pool2d(x2, 2, padding="same")
y = ndpool.min_pool3d(x3, 2, layout="channels_last")
y = ndpool.avg_pool1d(x1, 2, count_include_pad=False)
y = ndpool.avg_pool2d(x2, 3, 2, 1, divisor_override=4)
y = ndpool.avg_pool3d(x3, 2)
y = ndpool.lp_pool1d(x1, 2.0, 2)
y = ndpool.lp_pool2d(x2, 2, (2, 2))
y = ndpool.lp_pool3d(x3, 3, 2)
y = ndpool.adaptive_max_pool1d(x1, 3)
y = ndpool.adaptive_max_pool2d(x2, (3, None))
y = ndpool.adaptive_max_pool3d(x3, 2)
y = ndpool.adaptive_avg_pool1d(x1, 3)
y = ndpool.adaptive_avg_pool2d(x2, 1)
y = ndpool.adaptive_avg_pool3d(x3, (1, 2, 3))
y = ndpool.fractional_max_pool2d(x2, 2, output_size=4, rng=0)
y = ndpool.fractional_max_pool3d(x3, 2, output_ratio=0.5, rng=np.random.default_rng(3))
y = ndpool.global_max_pool(x2)
y = ndpool.global_avg_pool(x3, keepdims=True)
y = ndpool.pool(x2, "max", 2, axes=(-2, -1))
y = ndpool.median_pool1d(x1, 3, stride=1, padding=1)
y = ndpool.median_pool2d(x2, 3, ceil_mode=True)
y = ndpool.median_pool3d(x3, 2)
boxes = np.array([[0, 1.0, 1.0, 6.0, 6.0], [1, 0.0, 2.0, 4.0, 7.5]])
y = ndpool.roi_pool(x2, boxes, 2)
y = ndpool.roi_align(x2, [boxes[:1, 1:], boxes[1:, 1:]], (2, 3), 0.5, sampling_ratio=2, aligned=True)
y = ndpool.soft_pool1d(x1, 2)
y = ndpool.soft_pool2d(x2, 3, 2, 1, ceil_mode=True)
y = ndpool.soft_pool3d(x3, 2, layout="channels_last")
y = ndpool.attention_pool1d(x1, x1, 2)
y = ndpool.attention_pool2d(x2, np.zeros_like(x2), 3, stride=2, padding=1)
y = ndpool.attention_pool3d(x3, x3, 2)
positive2, positive3 = x2 + 1, x3 + 1
y = ndpool.stochastic_pool2d(positive2, 2, rng=0)
y = ndpool.stochastic_pool3d(positive3, 2, stride=1, training=False)
y = ndpool.blur_pool1d(x1)
y = ndpool.blur_pool2d(x2, 5, stride=2, padding_mode="zeros")
y = ndpool.blur_pool3d(x3, (3, 3, 1), 1, "replicate")
y = ndpool.max_blur_pool2d(x2, 2, filter_size=3)
y = ndpool.global_gem_pool(positive2, p=3.0)
y = ndpool.global_gem_pool(positive3, p=np.array([2.0, 3.0, 4.0]), keepdims=True)
y = ndpool.spatial_pyramid_pool(x2, levels=(1, 2), mode="avg")

# ------------------------------------------------- return_indices: a pair, by keyword or position
pooled: Array
indices: Indices
pooled, indices = ndpool.max_pool1d(x1, 2, return_indices=True)
pooled, indices = ndpool.max_pool2d(x2, 2, 2, 0, 1, False, True)
pooled, indices = ndpool.max_pool3d(x3, 2, return_indices=True)
pooled, indices = ndpool.min_pool2d(x2, 2, return_indices=True)
pooled, indices = ndpool.adaptive_max_pool2d(x2, 3, return_indices=True)
pooled, indices = ndpool.fractional_max_pool2d(x2, 2, output_size=4, return_indices=True, rng=0)
pooled, indices = ndpool.median_pool2d(x2, 2, return_indices=True)
either: Array | tuple[Array, Indices] = ndpool.max_pool2d(x2, 2, return_indices=bool(y.size))

pooled1, indices1 = ndpool.max_pool1d(x1, 2, return_indices=True)
pooled2, indices2 = ndpool.max_pool2d(x2, 2, return_indices=True)
pooled3, indices3 = ndpool.max_pool3d(x3, 2, return_indices=True)
y = ndpool.max_unpool1d(pooled1, indices1, 2)
y = ndpool.max_unpool2d(pooled2, indices2, 2, output_size=(8, 8))
y = ndpool.max_unpool3d(pooled3, indices3, 2)

# ---------------------------------------------------------------------- gradients
out, pullback = ndpool.vjp(ndpool.max_pool2d, x2, 3, stride=2, padding=1)
dx: Array = pullback(np.ones_like(out))
pair, pullback = ndpool.vjp(ndpool.max_pool2d, x2, 2, return_indices=True)
dx = pullback(np.ones_like(pair[0]))
indices = pair[1]
out, only_p = ndpool.vjp(ndpool.global_gem_pool, positive2, p=2.0, wrt="p")
dp: Array = only_p(np.ones_like(out))
out, both = ndpool.vjp(ndpool.global_gem_pool, positive2, wrt=("x", "p"))
dx, dp = both(np.ones_like(out))

# -------------------------------------------------------------------------- layers
layers: list[ndpool.nn.Pool[Array]] = [
    ndpool.nn.MaxPool1d(2), ndpool.nn.MaxPool2d(3, stride=2, padding=1),
    ndpool.nn.MaxPool3d(2), ndpool.nn.MinPool1d(2), ndpool.nn.MinPool2d(2),
    ndpool.nn.MinPool3d(2), ndpool.nn.AvgPool1d(2), ndpool.nn.AvgPool2d(2),
    ndpool.nn.AvgPool3d(2), ndpool.nn.LPPool1d(2, 2), ndpool.nn.LPPool2d(2, 2),
    ndpool.nn.LPPool3d(2, 2), ndpool.nn.AdaptiveMaxPool1d(2), ndpool.nn.AdaptiveMaxPool2d(2),
    ndpool.nn.AdaptiveMaxPool3d(2), ndpool.nn.AdaptiveAvgPool1d(2),
    ndpool.nn.AdaptiveAvgPool2d(2), ndpool.nn.AdaptiveAvgPool3d(2),
    ndpool.nn.FractionalMaxPool2d(2, output_size=3, rng=0),
    ndpool.nn.FractionalMaxPool3d(2, output_size=3, rng=0),
    ndpool.nn.GlobalMaxPool(), ndpool.nn.GlobalAvgPool(),
    ndpool.nn.SoftPool1d(2), ndpool.nn.SoftPool2d(2), ndpool.nn.SoftPool3d(2),
    ndpool.nn.StochasticPool2d(2, rng=0), ndpool.nn.StochasticPool3d(2).eval(),
    ndpool.nn.BlurPool1d(), ndpool.nn.BlurPool2d(3, 2, "circular"), ndpool.nn.BlurPool3d(2),
    ndpool.nn.MaxBlurPool2d(2), ndpool.nn.GlobalGeMPool(p=3.0), ndpool.nn.SpatialPyramidPool(),
]
inputs = {1: x1, 2: x2, 3: x3}
for layer in layers:
    name = type(layer).__name__
    rank = 2 if name[-2] not in "123" else int(name[-2])
    y = layer(inputs[rank] + 1 if "Stochastic" in name or "GeM" in name else inputs[rank])
    dx = layer.backward(np.ones_like(y))
learnable: dict[str, NDArray[np.float64]] = layers[-2].grads
learnable = layers[-2].params

medians: list[ndpool.nn.Pool[Array]] = [
    ndpool.nn.MedianPool1d(3), ndpool.nn.MedianPool2d(3, stride=1, padding=1), ndpool.nn.MedianPool3d(2)]
for layer in medians:
    y = layer(inputs[int(type(layer).__name__[-2])])
    dx = layer.backward(np.ones_like(y))
for region in (ndpool.nn.RoIPool(2, 1.0), ndpool.nn.RoIAlign((2, 2), 0.5, 2, aligned=True)):
    y = region(x2, boxes)
    dx = region.backward(np.ones_like(y))

with_indices = ndpool.nn.MaxPool2d(2, return_indices=True)
pooled, indices = with_indices.forward(x2)
unpool = ndpool.nn.MaxUnpool2d(2)
y = unpool(pooled, indices, output_size=(8, 8))
dx = unpool.backward(np.ones_like(y))
y = ndpool.nn.MaxUnpool1d(2)(pooled1, indices1)
y = ndpool.nn.MaxUnpool3d(2).forward(pooled3, indices3)

dlogits: Array
for lip, data in ((ndpool.nn.LIPPool1d(2), x1), (ndpool.nn.LIPPool2d(2, padding=1), x2),
                  (ndpool.nn.LIPPool3d(2), x3)):
    y = lip(data, data)
    dx, dlogits = lip.backward(np.ones_like(y))
clip = ndpool.nn.AttentionPool2d(8, 3, 1, output_dim=4, rng=0)
y = clip(x2)
dx = clip.backward(np.ones_like(y))
weights: Array = clip.grads["c_proj.weight"]

# ------------------------------------------------------------ everything else
y = ndpool.coarsen(x2, (1, 1, 2, 2))
y = ndpool.coarsen(x2, {2: 4}, "max", boundary="pad", skipna=True, dtype=np.float32)
with tempfile.TemporaryDirectory() as folder:
    ndpool.pyramid(x3[0, 0], os.path.join(folder, "volume.ome.zarr"), levels=2, min_size=2,
                   chunks=4, progress=False)

backend: ModuleType
with ndpool.use_backend("reference") as backend:
    y = ndpool.avg_pool2d(x2, 2)
threads: int = ndpool.get_num_threads()
ndpool.set_num_threads(threads)
with ndpool.block_threads(2):
    threads = ndpool.block_threads.current()
config: dict[str, Any] = ndpool.show_config(mode="dict")
ndpool.show_config()
version: str = ndpool.__version__
