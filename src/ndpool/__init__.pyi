"""Types of ndpool's public surface (the ops and layers are typed in functional/ and nn.pyi)."""
import os
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any, Callable, Literal, Mapping, Sequence, TypeVar, overload

from numpy.typing import ArrayLike, DTypeLike, NDArray
from typing_extensions import Concatenate, ParamSpec

from . import nn as nn
from .functional import *

_P = ParamSpec("_P")
_Y = TypeVar("_Y")
_Factors = int | Sequence[int] | Mapping[int | str, int]
_CoarsenOp = Literal["mean", "sum", "max", "min", "median", "mode"]

__version__: str

# wrt= is keyword-only between *args and **kwargs, where a ParamSpec allows nothing (PEP
# 612): the calls that give it are typed loosely, the others keep the op's own arguments
@overload
def vjp(op: Callable[..., _Y], x: ArrayLike, *args: Any, wrt: tuple[str, ...],  # type: ignore[overload-overlap]
        **kwargs: Any) -> tuple[_Y, Callable[[ArrayLike], tuple[NDArray[Any], ...]]]: ...
@overload
def vjp(op: Callable[..., _Y], x: ArrayLike, *args: Any, wrt: str,
        **kwargs: Any) -> tuple[_Y, Callable[[ArrayLike], NDArray[Any]]]: ...
@overload
def vjp(op: Callable[Concatenate[Any, _P], _Y], x: ArrayLike, *args: _P.args,
        **kwargs: _P.kwargs) -> tuple[_Y, Callable[[ArrayLike], NDArray[Any]]]: ...
def use_backend(name: Literal["compiled", "reference"]) -> AbstractContextManager[ModuleType]: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
@overload
def show_config(mode: Literal["stdout"] = "stdout") -> None: ...
@overload
def show_config(mode: Literal["dict", "dicts"]) -> dict[str, Any]: ...
@overload
def show_config(mode: str = "stdout") -> dict[str, Any] | None: ...

class _BlockThreads:
    def __call__(self, n: int) -> AbstractContextManager[None]: ...
    def current(self) -> int: ...

block_threads: _BlockThreads

def coarsen(x: ArrayLike, factors: _Factors, op: _CoarsenOp = "mean", *,
            boundary: Literal["exact", "trim", "pad"] = "exact", skipna: bool = False,
            dtype: DTypeLike | None = None) -> NDArray[Any]: ...
def pyramid(source: ArrayLike | os.PathLike[str], store: Any, *, levels: int | None = None,
            min_size: int = 64, factors: _Factors = 2, op: _CoarsenOp = "mean",
            chunks: int | Sequence[int] | None = None, axes: str | Sequence[str] | None = None,
            ngff: Literal["0.5", "0.4"] = "0.5", progress: bool = True,
            overwrite: bool = False) -> None: ...
