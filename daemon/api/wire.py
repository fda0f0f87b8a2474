"""Raw JSON narrowed to the contracts' types, once, where it enters: answers, events, files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import msgspec

from dropsight.daemon.contracts import SidecarRecord

T = TypeVar("T")


class WireError(ValueError):
    """JSON that does not have the shape its contract type says."""


def narrow(value: object, kind: type[T], what: str = "answer") -> T:
    """`value` (parsed JSON) checked against `kind` (a contract TypedDict), or WireError.

    Fields added by a newer peer are dropped; a missing required field, a wrong type or a value
    outside a Literal is an error. Nothing past this point needs to check shapes again.
    """
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise WireError(f"{what} does not follow the contract: {exc}") from None


def read_sidecar(path: Path) -> SidecarRecord:
    """A sidecar file to show (a file we may not have written: OSError or WireError)."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"{path} is not a sidecar: {exc}") from None
    return narrow(data, SidecarRecord, str(path))
