"""Hostile files cost a real service process bounded memory, and give it back.

A 1 GiB file of junk named .jpg, a 13000x13000 PNG (tiny on disk, 169 MP decoded) and a big
RGBA PNG under the pixel limit, each dropped into the watched folder of a real
`dropsight service` beside a normal photo. The bounds are generous (a shared, noisy machine)
yet far below what reading the whole file or decoding the whole image costs.
"""

from __future__ import annotations

import hashlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.daemon.helpers import load_valid, make_photo, wait_for
from tests.daemon.service.test_service_process import ServiceProcess

MB = 1 << 20
GIB = 1 << 30
PEAK_BOUND_MB = 400  # above the idle baseline, at any moment while the files are handled
AFTER_BOUND_MB = 150  # above the idle baseline, once the service is idle again


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (resident now) and VmHWM (resident at its peak) of a process, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text("ascii").splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceProcess]:
    """A real service with the offline model on an empty folder, ready and idle."""
    if not Path("/proc/self/status").is_file():
        pytest.skip("needs /proc to read a process's memory")
    folder = tmp_path / "in"
    folder.mkdir()
    svc = ServiceProcess(folder, tmp_path / "service.log")
    try:
        svc.wait_ready()
        time.sleep(1.0)  # let start-up settle before taking the baseline
        yield svc
    finally:
        svc.finish(signal.SIGKILL)


def drop(files: dict[str, Path], folder: Path) -> None:
    """Move finished files into the watched folder (a rename: never seen half-written)."""
    for name, path in files.items():
        path.rename(folder / name)


def handle(svc: ServiceProcess, folder: Path, files: dict[str, Path]) -> dict[str, float]:
    """Drop `files` plus a normal photo, wait for every sidecar; memory above the baseline."""
    baseline = memory_mb(svc.proc.pid)["VmRSS"]
    make_photo(folder.parent / "src" / "ok.jpg", seed=3)
    drop({**files, "ok.jpg": folder.parent / "src" / "ok.jpg"}, folder)
    names = [*files, "ok.jpg"]
    wait_for(lambda: all((folder / f"{n}.json").exists() for n in names), 120, "every sidecar")
    assert load_valid(folder / "ok.jpg.json")["status"] == "ok"  # the normal photo is labelled
    peak = memory_mb(svc.proc.pid)["VmHWM"] - baseline
    time.sleep(2.0)  # idle again
    after = memory_mb(svc.proc.pid)["VmRSS"] - baseline
    print(f"baseline {baseline:.0f} MB, peak +{peak:.0f} MB, after +{after:.0f} MB")
    assert svc.proc.poll() is None, svc.output()
    return {"peak": peak, "after": after}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MB):
            h.update(chunk)
    return h.hexdigest()


def test_a_1_gib_junk_jpg_is_refused_after_its_header_without_holding_it(
    tmp_path: Path, service: ServiceProcess
) -> None:
    folder = tmp_path / "in"
    junk = tmp_path / "src" / "x.jpg"
    junk.parent.mkdir()
    with junk.open("wb") as f:  # sparse: 1 GiB of zeros that costs no disk
        f.truncate(GIB)
    want = sha256_of(junk)
    used = handle(service, folder, {"x.jpg": junk})
    record = load_valid(folder / "x.jpg.json")
    assert record["status"] == "error"
    assert record["error"] == {
        "type": "not_an_image",
        "message": "not an image file Dropsight can read",
    }
    # The hash and size are of the whole file, streamed: its sidecar stays current.
    assert (record["image"]["bytes"], record["image"]["sha256"]) == (GIB, want)
    assert used["peak"] < PEAK_BOUND_MB, f"reading a junk file cost {used['peak']:.0f} MB"
    assert used["after"] < AFTER_BOUND_MB, f"{used['after']:.0f} MB kept after a junk file"


def test_a_169_megapixel_png_is_refused_by_its_header_not_decoded(
    tmp_path: Path, service: ServiceProcess
) -> None:
    folder = tmp_path / "in"
    src = tmp_path / "src" / "big.png"
    src.parent.mkdir()
    Image.new("RGB", (13000, 13000), (40, 120, 200)).save(src)  # ~0.5 MB on disk
    size = src.stat().st_size
    used = handle(service, folder, {"big.png": src})
    record = load_valid(folder / "big.png.json")
    assert record["status"] == "error"
    assert record["error"] is not None
    assert record["error"]["type"] == "too_large"
    message = record["error"]["message"]
    assert "13000x13000" in message
    assert "service.max_decode_megapixels" in message  # says which setting to raise
    assert record["image"]["bytes"] == size
    assert used["peak"] < PEAK_BOUND_MB, f"a 169 MP PNG cost {used['peak']:.0f} MB"
    assert used["after"] < AFTER_BOUND_MB, f"{used['after']:.0f} MB kept after a huge PNG"


def test_a_big_rgba_png_under_the_limit_is_labelled_in_bounded_memory(
    tmp_path: Path, service: ServiceProcess
) -> None:
    # 81 MP with alpha: 324 MB decoded, which the decoder cannot avoid; every later step
    # (alpha over white, RGB, resize) must work on a reduced copy, not on more full copies.
    folder = tmp_path / "in"
    src = tmp_path / "src" / "pano.png"
    src.parent.mkdir()
    Image.new("RGBA", (9000, 9000), (200, 40, 40, 255)).save(src)
    used = handle(service, folder, {"pano.png": src})
    record = load_valid(folder / "pano.png.json")
    assert record["status"] == "ok", record["error"]
    assert (record["image"]["width"], record["image"]["height"]) == (9000, 9000)
    assert used["peak"] < 324 + 250, f"an 81 MP RGBA PNG cost {used['peak']:.0f} MB"
    assert used["after"] < AFTER_BOUND_MB, f"{used['after']:.0f} MB kept after a big PNG"
