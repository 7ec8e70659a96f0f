"""Write the type stubs of the generated ops and layers from their runtime signatures.

The per-rank ops (``ndpool.functional``) and layers (``ndpool.nn``) are made at import,
so type checkers cannot see them; this script writes ``functional/__init__.pyi`` and
``nn.pyi`` from the same signatures, with the types in ``TYPES`` below. Run it after
adding an op or an argument: ``python scripts/make_stubs.py`` (tests/test_typing.py
fails while the stubs and the runtime differ).
"""
from __future__ import annotations

import inspect
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ndpool import functional, nn  # noqa: E402

#: one type per argument name; (family, name) entries override it for one family
TYPES = {
    "x": "ArrayLike",
    "indices": "ArrayLike",
    "kernel_size": "_Size",
    "stride": "_Size | None",
    "padding": "_Padding",
    "dilation": "_Size",
    "ceil_mode": "bool",
    "return_indices": "bool",
    "ties": "_Ties",
    "layout": "_Layout",
    "storage_order": "Literal[0, 1]",
    "count_include_pad": "bool",
    "divisor_override": "int | None",
    "norm_type": "float",
    "output_size": "_Size | None",
    "output_ratio": "float | Sequence[float] | None",
    "samples": "ArrayLike | None",
    "rng": "_Seed",
    "keepdims": "bool",
    "op": "_PoolOp",
    "axes": "int | Sequence[int] | None",
    "boxes": "_Boxes",
    "spatial_scale": "float",
    "sampling_ratio": "int",
    "aligned": "bool",
    "logits": "ArrayLike",
    "training": "bool",
    "filter_size": "_Size",
    "padding_mode": 'Literal["reflect", "zeros", "replicate", "circular"]',
    "p": "ArrayLike",
    "eps": "float",
    "levels": "int | Sequence[int]",
    "mode": 'Literal["max", "avg"]',
    ("adaptive", "output_size"): "int | None | Sequence[int | None]",
    ("roi", "output_size"): "_Size",
    ("unpool", "output_size"): "Sequence[int] | None",
}

HEADER = '''\
"""Types of the per-rank ops, which ndpool.functional makes at import.

Written by scripts/make_stubs.py from the runtime signatures; do not edit by hand.
"""
from typing import Any, Literal, Sequence, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

_Size = int | Sequence[int]
_Padding = int | str | Sequence[int] | Sequence[Sequence[int]]
_Ties = Literal["first", "split"]
_Layout = Literal["channels_first", "channels_last"]
_PoolOp = Literal["max", "min", "avg", "sum"]
_Seed = int | np.random.SeedSequence | np.random.BitGenerator | np.random.Generator | None
_Indexed = tuple[NDArray[Any], NDArray[np.int64]]
_Boxes = ArrayLike | Sequence[ArrayLike]
'''

NN_HEADER = '''\
"""Types of the layers, which ndpool.nn makes at import.

Written by scripts/make_stubs.py from the runtime signatures; do not edit by hand.
"""
from typing import Any, Callable, ClassVar, Generic, Literal, Sequence, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray
from typing_extensions import Self

from .functional import _Boxes, _Layout, _Padding, _Seed, _Size, _Ties

_Y = TypeVar("_Y")
_Indexed = tuple[NDArray[Any], NDArray[np.int64]]

class Pool(Generic[_Y]):
    """Base of every layer: ``forward`` caches the pullback, ``backward`` runs it."""

    op: ClassVar[Callable[..., Any]]
    arguments: dict[str, Any]
    params: dict[str, NDArray[np.float64]]
    grads: dict[str, NDArray[np.float64]]
    training: bool
    def __init__(self, *args: Any, **kwargs: Any) -> None: ...
    def forward(self, x: ArrayLike) -> _Y: ...
    def __call__(self, x: ArrayLike) -> _Y: ...
    def backward(self, dy: ArrayLike) -> NDArray[Any]: ...
    def train(self, mode: bool = True) -> Self: ...
    def eval(self) -> Self: ...
'''


def family_of(name: str) -> str:
    for family in ("adaptive", "unpool", "roi", "attention"):
        if family in name:
            return family
    return ""


def annotation(family: str, name: str) -> str:
    return TYPES.get((family, name), TYPES[name])


def parameter(family: str, p: inspect.Parameter, *, literal=None, default=True) -> str:
    written = annotation(family, p.name) if literal is None else literal
    text = f"{p.name}: {written}"
    if default and p.default is not inspect.Parameter.empty:
        text += f" = {p.default!r}"
    return text


def params_text(family, parameters, literal=None, keyword=False, positional=False):
    """Parameters with ``return_indices`` typed ``literal``; ``keyword``: it (and what
    follows) keyword-only; ``positional``: everything before it required."""
    out, seen = [], False
    for p in parameters:
        starts_keywords = p.kind is p.KEYWORD_ONLY or (
            keyword and p.name == "return_indices")
        if starts_keywords and "*" not in out:
            out.append("*")
        if p.name == "return_indices" and literal is not None:
            seen = True
            out.append(parameter(family, p, literal=literal,
                                 default=literal == "Literal[False]"))
        else:
            out.append(parameter(family, p, default=not (positional and not seen)))
    return ", ".join(out)


#: the overloads on return_indices: (its type, keyword-only, earlier ones required, result);
#: the last, the runtime signature itself, serves a plain bool
OVERLOADS = (("Literal[False]", False, False, "NDArray[Any]"),
             ("Literal[True]", True, False, "_Indexed"),
             ("Literal[True]", False, True, "_Indexed"),
             (None, False, False, "NDArray[Any] | _Indexed"))


def overloads(family: str, parameters) -> list:
    """(parameter text, result) per overload on return_indices."""
    return [(params_text(family, parameters, literal, keyword=keyword, positional=positional),
             result) for literal, keyword, positional, result in OVERLOADS]


def op_stub(name: str, signature: inspect.Signature) -> str:
    family = family_of(name)
    parameters = list(signature.parameters.values())
    if "return_indices" not in signature.parameters:
        return f"def {name}({params_text(family, parameters)}) -> NDArray[Any]: ...\n"
    return "".join(f"@overload\ndef {name}({text}) -> {result}: ...\n"
                   for text, result in overloads(family, parameters))


def functional_stub() -> str:
    names = list(functional.__all__)
    body = [HEADER, f"__all__ = {names!r}\n"]
    for name in names:
        body.append("\n" + op_stub(name, getattr(functional, name)._ndpool_signature))
    return "".join(body)


def layer_parameters(cls) -> list:
    return [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
            for name, default in cls._signature]


def layer_stub(name: str, cls) -> str:
    family = family_of(cls.op.__name__)
    parameters = layer_parameters(cls)
    indexed = any(p.name == "return_indices" for p in parameters)
    call, ignore = "self, x: ArrayLike", ""
    if family == "unpool":   # unpooling takes the indices too, unlike every other layer
        call += ", indices: ArrayLike, output_size: Sequence[int] | None = None"
        ignore = "  # type: ignore[override]"
    if family == "roi":      # the regions come beside x, as in torchvision
        call += ", boxes: _Boxes"
        ignore = "  # type: ignore[override]"
    if family == "attention":   # LIP takes the logits too, and returns both gradients
        call += ", logits: ArrayLike"
        ignore = "  # type: ignore[override]"
    lines = [f"\nclass {name}(Pool[{'_Y' if indexed else 'NDArray[Any]'}]):\n",
             f'    """Layer form of ndpool.{cls.op.__name__}."""\n\n']
    if not indexed:
        lines.append(f"    def __init__(self, {params_text(family, parameters)}) -> None: ...\n")
        result = "NDArray[Any]"
    else:
        for text, kind in overloads(family, parameters):
            lines.append(f"    @overload\n    def __init__(self: {name}[{kind}], {text}) -> None: ...\n")
        result = "_Y"
    lines.append(f"    def forward({call}) -> {result}: ...{ignore}\n")
    lines.append(f"    def __call__({call}) -> {result}: ...{ignore}\n")
    if family == "attention":
        lines.append("    def backward(self, dy: ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]: "
                     "...  # type: ignore[override]\n")
    return "".join(lines)


#: layers that are no Pool of an op (their own arithmetic), written as they are
OWN_LAYERS = {"AttentionPool2d": '''
class AttentionPool2d:
    """CLIP's global attention pooling (Radford et al. 2021)."""

    arguments: dict[str, Any]
    params: dict[str, NDArray[Any]]
    grads: dict[str, NDArray[Any]]
    output_dim: int
    def __init__(self, spacial_dim: int, embed_dim: int, num_heads: int, output_dim: int | None = None, rng: _Seed = None, dtype: Any = 'float32') -> None: ...
    def forward(self, x: ArrayLike) -> NDArray[Any]: ...
    def __call__(self, x: ArrayLike) -> NDArray[Any]: ...
    def backward(self, dy: ArrayLike) -> NDArray[Any]: ...
'''}


def nn_stub() -> str:
    return NN_HEADER.replace("class Pool", f"__all__ = {list(nn.__all__)!r}\n\nclass Pool") + "".join(
        OWN_LAYERS[name] if name in OWN_LAYERS else layer_stub(name, getattr(nn, name))
        for name in nn.__all__)


STUBS = {"src/ndpool/functional/__init__.pyi": functional_stub,
         "src/ndpool/nn.pyi": nn_stub}


def main() -> None:
    for path, make in STUBS.items():
        (ROOT / path).write_text(make())
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
