"""Read PyTorch `.pth` state dicts into NumPy arrays without torch, refusing anything else."""

from __future__ import annotations

import math
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, TypeGuard

import numpy as np

# torch.serialization's legacy (pre-1.6, non-zip) header.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class WeightsFileError(ValueError):
    """A weights file that is truncated, corrupt or not in a format we read."""


class UnsafeWeightsError(WeightsFileError):
    """A weights file whose pickle asks for a global outside the allow-list."""


class _Inert:
    """Base of every stand-in: a pickle's BUILD opcode must not be able to alter one."""

    def __setstate__(self, state: object) -> None:
        # Without this, BUILD would write straight into __dict__, even of frozen dataclasses,
        # and could e.g. change the dtype of the shared FloatStorage stand-in.
        raise TypeError("the pickle tries to modify a tensor stand-in")


@dataclass(frozen=True)
class _StorageType(_Inert):
    """Stand-in for `torch.FloatStorage` and friends: only carries the element dtype."""

    name: str
    dtype: np.dtype[Any]


# PyTorch writes storage bytes little-endian on every platform.
_STORAGE_TYPES = {
    name: _StorageType(name, np.dtype(code))
    for name, code in {
        "FloatStorage": "<f4",
        "DoubleStorage": "<f8",
        "HalfStorage": "<f2",
        "LongStorage": "<i8",
        "IntStorage": "<i4",
        "ShortStorage": "<i2",
        "CharStorage": "i1",
        "ByteStorage": "u1",
        "BoolStorage": "?",
    }.items()
}


@dataclass(frozen=True)
class _StorageRef(_Inert):
    """A storage named by a persistent id; the bytes are read later."""

    key: str
    stype: _StorageType
    numel: int
    # (offset, size) in elements when the pickle refers to a slice of the root storage.
    view: tuple[int, int] | None = None


@dataclass(frozen=True)
class _TensorSpec(_Inert):
    """What `_rebuild_tensor_v2` was asked to build, materialised once storages are read."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_tuple(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(_is_int(v) for v in value):
        raise TypeError(f"tensor {what} must be a tuple of ints, got {value!r}")
    return value


def _rebuild_tensor_v2(*args: object) -> _TensorSpec:
    """Stand-in for `torch._utils._rebuild_tensor_v2`: records, checks types, runs nothing."""
    # (storage, storage_offset, size, stride[, requires_grad, backward_hooks, metadata]);
    # the optional tail is training-only state.
    if not 4 <= len(args) <= 7:
        raise TypeError("malformed tensor record")
    storage, storage_offset, size, stride = args[:4]
    if not isinstance(storage, _StorageRef) or not _is_int(storage_offset):
        raise TypeError("malformed tensor record")
    return _TensorSpec(
        storage, storage_offset, _int_tuple(size, "size"), _int_tuple(stride, "stride")
    )


def _rebuild_parameter(data: object, requires_grad: object, backward_hooks: object) -> _TensorSpec:
    """Stand-in for `torch._utils._rebuild_parameter`: a Parameter is just its tensor here."""
    del requires_grad, backward_hooks
    if not isinstance(data, _TensorSpec):
        raise TypeError("malformed parameter record")
    return data


@dataclass(frozen=True)
class _Constructor(_Inert):
    """An allow-listed callable; wrapped because BUILD could add attributes to a function."""

    fn: Callable[..., _TensorSpec]

    def __call__(self, *args: object) -> _TensorSpec:
        return self.fn(*args)


# The whole allow-list: everything a plain state dict of dense tensors needs, nothing callable
# beyond these (storage types are inert values, not classes).
_ALLOWED: dict[tuple[str, str], object] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _Constructor(_rebuild_tensor_v2),
    ("torch._utils", "_rebuild_parameter"): _Constructor(_rebuild_parameter),
    **{("torch", name): stype for name, stype in _STORAGE_TYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals and torch storage persistent ids."""

    def __init__(self, file: IO[bytes], path: Path, legacy: bool) -> None:
        super().__init__(file, encoding="utf-8")
        self._path = path
        self._legacy = legacy
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        """Return the stand-in for an allow-listed global; refuse everything else."""
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeWeightsError(
                f"{self._path}: refusing to load, the pickle references {module}.{name} "
                "which is not on the allow-list of tensor-building globals"
            ) from None

    def persistent_load(self, pid: Any) -> _StorageRef:
        """Turn a `('storage', type, key, location, numel[, view])` id into a storage ref."""
        # Legacy ids carry view metadata as a sixth element; zip ids have five.
        if not isinstance(pid, tuple) or len(pid) != (6 if self._legacy else 5):
            raise TypeError(f"unsupported persistent id {pid!r}")
        typename, stype, key, _location, numel, *rest = pid
        if typename != "storage" or not isinstance(stype, _StorageType):
            raise TypeError(f"unsupported persistent id {pid!r}")
        if not isinstance(key, str) or not _is_int(numel) or numel < 0:
            raise TypeError(f"malformed storage id {pid!r}")
        root = self.storages.setdefault(key, _StorageRef(key, stype, numel))
        if root.stype != stype or root.numel != numel:
            raise TypeError(f"storage {key} is declared twice with different types or sizes")
        view = rest[0] if rest else None
        if view is None:
            return root
        # Legacy view metadata: (view_key, offset, size) in elements of the root storage.
        if not (isinstance(view, tuple) and len(view) == 3 and all(map(_is_int, view[1:]))):
            raise TypeError(f"malformed storage view {view!r}")
        _view_key, offset, size = view
        if offset < 0 or size < 0 or offset + size > numel:
            raise TypeError(f"storage view {view!r} lies outside storage {key}")
        return _StorageRef(key, stype, numel, (offset, size))


def _materialise(name: str, spec: _TensorSpec, roots: dict[str, np.ndarray]) -> np.ndarray:
    """Copy one tensor out of its storage, bounds-checked so a crafted stride cannot overread."""
    flat = roots[spec.storage.key]
    if spec.storage.view is not None:
        start, length = spec.storage.view
        flat = flat[start : start + length]
    size, stride = spec.size, spec.stride
    if len(size) != len(stride) or min(size, default=0) < 0 or min(stride, default=0) < 0:
        raise TypeError(f"tensor {name} has inconsistent size {size} / stride {stride}")
    if math.prod(size) == 0:
        return np.zeros(size, dtype=flat.dtype)
    last = spec.offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if spec.offset < 0 or last >= flat.size:
        raise TypeError(f"tensor {name} reaches outside its storage")
    view = np.lib.stride_tricks.as_strided(
        flat[spec.offset :], shape=size, strides=[s * flat.itemsize for s in stride]
    )
    # Copy: contiguous, writable, and independent of the file buffer.
    return np.array(view, order="C")


def _collect(path: Path, obj: object, roots: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check the unpickled object is a flat state dict and materialise its tensors."""
    if not isinstance(obj, dict):
        raise TypeError(f"expected a state dict, found {type(obj).__name__}")
    out: dict[str, np.ndarray] = {}
    for name, spec in obj.items():
        if not isinstance(name, str) or not isinstance(spec, _TensorSpec):
            raise TypeError(f"state dict entry {name!r} is not a tensor")
        out[name] = _materialise(name, spec, roots)
    return out


def _read_exact(f: IO[bytes], n: int, remaining: int) -> bytes:
    # Check against the file size first: a corrupt count must not trigger a huge allocation.
    if n > remaining:
        raise EOFError(f"needs {n} more bytes, only {remaining} left")
    data = f.read(n)
    if len(data) != n:
        raise EOFError(f"needs {n} more bytes, got {len(data)}")
    return data


def _load_legacy(path: Path, f: IO[bytes], file_size: int) -> dict[str, np.ndarray]:
    """Legacy layout: magic, protocol, sys_info, state dict, storage keys, raw storages."""
    # Check the magic number before reading on, so other files get a clear message.
    for expected in (_LEGACY_MAGIC, _LEGACY_PROTOCOL):
        if _RestrictedUnpickler(f, path, legacy=True).load() != expected:
            raise WeightsFileError(f"{path}: not a legacy PyTorch .pth (bad magic number)")
    if not isinstance(_RestrictedUnpickler(f, path, legacy=True).load(), dict):
        raise WeightsFileError(f"{path}: not a legacy PyTorch .pth (no sys_info header)")
    unpickler = _RestrictedUnpickler(f, path, legacy=True)
    state = unpickler.load()
    keys = _RestrictedUnpickler(f, path, legacy=True).load()
    if not isinstance(keys, list) or set(keys) != set(unpickler.storages):
        raise TypeError("storage key list does not match the storages the state dict uses")
    roots: dict[str, np.ndarray] = {}
    for key in keys:
        ref = unpickler.storages[key]
        (count,) = struct.unpack("<q", _read_exact(f, 8, file_size - f.tell()))
        if count != ref.numel:
            raise TypeError(f"storage {key} holds {count} elements, expected {ref.numel}")
        nbytes = count * ref.stype.dtype.itemsize
        roots[key] = np.frombuffer(_read_exact(f, nbytes, file_size - f.tell()), ref.stype.dtype)
    return _collect(path, state, roots)


def _load_zip(path: Path, zf: zipfile.ZipFile) -> dict[str, np.ndarray]:
    """Zip layout (torch >= 1.6): `<name>/data.pkl` plus one `<name>/data/<key>` per storage."""
    pkls = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkls) != 1:
        raise WeightsFileError(f"{path}: a zip file but not a PyTorch checkpoint (no data.pkl)")
    prefix = pkls[0].removesuffix("data.pkl")
    # Files from before torch recorded byte order are little-endian.
    byteorder = b"little"
    if f"{prefix}byteorder" in zf.namelist():
        byteorder = zf.read(f"{prefix}byteorder").strip()
    if byteorder not in (b"little", b"big"):
        raise TypeError(f"unknown byte order {byteorder!r}")
    order: Literal["<", ">"] = "<" if byteorder == b"little" else ">"
    with zf.open(pkls[0]) as f:
        unpickler = _RestrictedUnpickler(f, path, legacy=False)
        state = unpickler.load()
    roots: dict[str, np.ndarray] = {}
    for key, ref in unpickler.storages.items():
        info = zf.getinfo(f"{prefix}data/{key}")
        dtype = ref.stype.dtype.newbyteorder(order)
        nbytes = ref.numel * dtype.itemsize
        # Compare sizes before reading so a crafted entry cannot balloon memory.
        if info.file_size != nbytes:
            raise TypeError(f"storage {key} holds {info.file_size} bytes, expected {nbytes}")
        roots[key] = np.frombuffer(zf.read(info), dtype).astype(dtype.newbyteorder("="))
    return _collect(path, state, roots)


def load_state_dict(path: Path) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict of dense tensors from `path` as NumPy arrays, safely."""
    path = Path(path)
    with path.open("rb") as f:  # a missing or unreadable file stays an OSError
        try:
            # Like torch, decide by the leading bytes: a legacy file's raw float data could
            # contain something that looks like a zip's trailing directory.
            is_zip = f.read(4) == b"PK\x03\x04"
            f.seek(0)
            if is_zip:
                with zipfile.ZipFile(f) as zf:
                    return _load_zip(path, zf)
            return _load_legacy(path, f, os.fstat(f.fileno()).st_size)
        except WeightsFileError:
            raise
        except Exception as exc:  # anything else means the bytes are not what they claim
            raise WeightsFileError(
                f"{path}: truncated, corrupt or not a PyTorch .pth ({type(exc).__name__}: {exc})"
            ) from exc
