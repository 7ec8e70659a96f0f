"""torch.nn modules running ndpool's ops: torch.nn's names and constructor arguments,
plus ndpool's own (``MinPool*d``, ``GlobalMaxPool``, ``GlobalAvgPool``). The fractional
pools take ``samples`` where torch.nn's take ``_random_samples`` (the same place).

>>> import torch, ndpool.torch.nn
>>> pool = ndpool.torch.nn.MaxPool2d(3, stride=2, padding=1)
>>> x = torch.randn(1, 3, 8, 8)
>>> torch.equal(pool(x), torch.nn.MaxPool2d(3, stride=2, padding=1)(x))
True
"""

import torch

from .. import nn as _layers
from .. import torch as _bridge

__all__ = []


class Pool(torch.nn.Module):
    """Base of the modules: holds the bound constructor arguments (also as attributes,
    as torch.nn's modules do) and calls the op; no state, no parameters."""

    op_name = ""
    _signature: tuple = ()

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.arguments = _layers.bind_arguments(type(self).__name__, self._signature, args,
                                                kwargs)
        if self.arguments.get("stride", ()) is None and not self.op_name.startswith("lp_"):
            # as torch.nn's max and avg pools keep it (LPPool keeps None); the same windows
            self.arguments["stride"] = self.arguments["kernel_size"]
        for name, value in self.arguments.items():
            setattr(self, name, value)

    def forward(self, x):
        return getattr(_bridge, self.op_name)(x, **self.arguments)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())


def _module(name: str, op_name: str, params):
    cls = type(name, (Pool,), {"op_name": op_name, "_signature": params,
                               "__doc__": f"Module form of :func:`ndpool.torch.{op_name}`.",
                               "__module__": __name__})
    globals()[name] = cls
    __all__.append(name)


for _rank in (1, 2, 3):
    for _cls, _fn, _params in (("MaxPool", "max_pool", _layers._EXTREME),
                               ("MinPool", "min_pool", _layers._EXTREME),
                               ("AvgPool", "avg_pool", _layers._AVG),
                               ("LPPool", "lp_pool", _layers._LP),
                               ("AdaptiveMaxPool", "adaptive_max_pool", _layers._ADAPTIVE_MAX),
                               ("AdaptiveAvgPool", "adaptive_avg_pool", _layers._ADAPTIVE_AVG),
                               ("SoftPool", "soft_pool", _layers._SOFT),
                               ("MedianPool", "median_pool", _layers._MEDIAN)):
        _module(f"{_cls}{_rank}d", f"{_fn}{_rank}d", _params)
for _rank in (2, 3):
    _module(f"FractionalMaxPool{_rank}d", f"fractional_max_pool{_rank}d", _layers._FRACTIONAL)
_module("GlobalMaxPool", "global_max_pool", _layers._GLOBAL)
_module("GlobalAvgPool", "global_avg_pool", _layers._GLOBAL)


def _unpool_forward(self, x, indices, output_size=None):
    """Unpool ``x`` at ``indices`` (torch.nn.MaxUnpool*d's forward)."""
    return getattr(_bridge, self.op_name)(x, indices, output_size=output_size, **self.arguments)


for _rank in (1, 2, 3):
    _module(f"MaxUnpool{_rank}d", f"max_unpool{_rank}d", _layers._UNPOOL)
    globals()[f"MaxUnpool{_rank}d"].forward = _unpool_forward
