"""Raw JSON narrowed to the contracts' types, once, where it enters: answers, events, files."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import msgspec

from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.outputs import sidecar

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
    """A sidecar file to show (a file we may not have written: OSError or WireError).

    Read as every reader does (`outputs.sidecar.load`): never blocking, at most 1 MB.
    """
    loaded = sidecar.load(path)
    if loaded.record is not None:
        return loaded.record
    if loaded.kind == "absent":
        raise FileNotFoundError(f"{path}: no such file")
    raise WireError(f"{path} is not a Dropsight sidecar: {loaded.reason}")
