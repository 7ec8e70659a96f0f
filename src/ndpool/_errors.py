"""User-facing errors: each names the op, the argument, its value and the rule broken."""
from __future__ import annotations

from typing import NoReturn, Optional


def fail(op: str, message: str, hint: Optional[str] = None, *, kind=ValueError) -> NoReturn:
    """Raise ``kind`` as ``"op: message (hint)"``."""
    text = f"{op}: {message}"
    if hint:
        text += f" ({hint})"
    raise kind(text)


def type_fail(op: str, message: str, hint: Optional[str] = None) -> NoReturn:
    fail(op, message, hint, kind=TypeError)
