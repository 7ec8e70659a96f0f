"""Array layouts: batched or not, channels first or last, 1-D and 2-D as 3-D.

Backends see one canonical view: ``(planes, D, H, W)`` for channels-first input and
``(batch, D, H, W, channels)`` for channels-last, with size-1 dims in front of the
spatial dims of 1-D and 2-D data. ``Layout`` remembers how to go back.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ._errors import fail
from ._window import Axis, Window, _axis

LAYOUTS = ("channels_first", "channels_last")


@dataclass(frozen=True)
class Layout:
    rank: int
    channels_last: bool
    batched: bool
    lead: Tuple[int, ...]       # (N, C) or (C,): the caller's non-spatial sizes
    spatial: Tuple[int, ...]

    @property
    def batch(self) -> int:
        return self.lead[0] if self.batched else 1

    @property
    def channels(self) -> int:
        return self.lead[-1]

    @property
    def planes(self) -> int:
        return self.batch * self.channels

    @property
    def name(self) -> str:
        return "channels_last" if self.channels_last else "channels_first"

    @property
    def spatial_dims(self) -> Tuple[int, ...]:
        """The caller's array dims that hold the spatial sizes, in order."""
        first = (1 if self.batched else 0) if self.channels_last else len(self.lead)
        return tuple(range(first, first + self.rank))

    @property
    def plane_dims(self) -> Tuple[int, ...]:
        """The caller's array dims whose cells are the channels-first planes, in order."""
        return () if self.channels_last else tuple(range(len(self.lead)))

    def canonical(self, x: np.ndarray) -> np.ndarray:
        """The backend view of ``x``, an input or an output of this layout (a view
        whenever NumPy can make one)."""
        pad = (1,) * (3 - self.rank)
        if self.channels_last:
            spatial = x.shape[1:-1] if self.batched else x.shape[:-1]
            return x.reshape((self.batch,) + pad + spatial + (self.channels,))
        return x.reshape((self.planes,) + pad + x.shape[x.ndim - self.rank:])

    def restore(self, y: np.ndarray, spatial: Tuple[int, ...]) -> np.ndarray:
        """Reshape a canonical result with spatial size ``spatial`` to the caller's layout."""
        if self.channels_last:
            lead = (self.batch,) if self.batched else ()
            return y.reshape(lead + tuple(spatial) + (self.channels,))
        return y.reshape(self.lead + tuple(spatial))

    @property
    def channel_axis(self) -> int:
        """Where the channels of a channels-first array of this rank and batching sit."""
        return 1 if self.batched else 0

    def to_first(self, a: np.ndarray) -> np.ndarray:
        """A channels-last array of this layout as the channels-first view of it."""
        return np.moveaxis(a, -1, self.channel_axis) if self.channels_last else a

    def from_first(self, a: np.ndarray) -> np.ndarray:
        """A channels-first array back in this layout (a view)."""
        return np.moveaxis(a, self.channel_axis, -1) if self.channels_last else a

    def first(self) -> "Layout":
        """The channels-first Layout of the same array."""
        return Layout(self.rank, False, self.batched, self.lead, self.spatial)


def layout_word(op: str, layout) -> str:
    """``layout`` checked: "channels_first" or "channels_last"."""
    if not isinstance(layout, str) or layout not in LAYOUTS:
        fail(op, f"layout={layout!r} is not one of 'channels_first', 'channels_last'")
    return layout


def layout_of(op: str, x: np.ndarray, rank: int, layout: str = "channels_first") -> Layout:
    """Read batch, channels and spatial sizes of ``x`` for a ``rank``-D op."""
    if layout not in LAYOUTS:  # before the cache, which needs a hashable key
        layout_word(op, layout)
    return layout_for(op, x.shape, rank, layout)


@functools.lru_cache(maxsize=1024)
def layout_for(op: str, shape: Tuple[int, ...], rank: int,
               layout: str = "channels_first") -> Layout:
    """The Layout of an array of ``shape`` (cached: Layouts are frozen, and this runs on
    every call)."""
    if layout not in LAYOUTS:
        fail(op, f"layout={layout!r} is not one of 'channels_first', 'channels_last'")
    ndim = len(shape)
    if ndim not in (rank + 1, rank + 2):
        fail(op, f"x must have {rank + 2} dims (N, C, {_dims(rank)}) or {rank + 1} "
             f"(unbatched), got shape {shape}")
    batched = ndim == rank + 2
    channels_last = layout == "channels_last"
    if channels_last:
        lead = shape[:1] + shape[-1:] if batched else shape[-1:]
        spatial = shape[1:-1] if batched else shape[:-1]
    else:
        lead, spatial = shape[: ndim - rank], shape[ndim - rank:]
    if any(s == 0 for s in spatial):
        fail(op, f"x has an empty spatial dim, shape {shape}")
    return Layout(rank, channels_last, batched, tuple(lead), tuple(spatial))


def _dims(rank: int) -> str:
    return ", ".join("DHW"[3 - rank:])


_TRIVIAL = _axis([0], [1], 1, [0], [1.0])


def axes3(window: Window) -> Tuple[Axis, ...]:
    """The window's axes with size-1 dims in front, to match the canonical 3-D view."""
    return (_TRIVIAL,) * (3 - window.rank) + tuple(window.axes)


def spatial3(sizes) -> Tuple[int, ...]:
    return (1,) * (3 - len(sizes)) + tuple(sizes)
