"""The frozen bundle (dist/dropsight) runs with no Python: proved in a minimal Debian root.

A `debootstrap --variant=minbase bookworm` root has no python3. The bundle is copied in, /proc
is mounted, and the bundle's own executables run there through chroot:

- `dropsight classify --json` labels a real photo (skimage's chelsea, a cat);
- `dropsight service` labels a photo found at start and one dropped in while it runs, and
  exits 0 on SIGTERM; it also does so with no standard streams at all (what a windowed
  build on Windows has: `sys.stdout is None`);
- a model the bundle does not carry gives a clear error;
- the bundle holds no TensorFlow/Keras/PyTorch and stays under the size target.

Prerequisites (each missing one skips with its reason): root (chroot, mount); a built bundle
in dist/dropsight, or DROPSIGHT_BUILD_FROZEN=1 to build it here (`make dist`'s two steps);
a Debian root cached at $DROPSIGHT_DEBOOTSTRAP_DIR (default /var/tmp/dropsight-debootstrap),
made with debootstrap when missing (~1 min, needs the Debian mirror).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dropsight.daemon.outputs.xmp import packet

pytestmark = pytest.mark.frozen

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist" / "dropsight"
DEBOOTSTRAP_DIR = Path(
    os.environ.get("DROPSIGHT_DEBOOTSTRAP_DIR", "/var/tmp/dropsight-debootstrap")
)
SUITE = "bookworm"
CAT_CLASSES = set(range(281, 286))  # tabby, tiger_cat, Persian_cat, Siamese_cat, Egyptian_cat
SIZE_TARGET_MB = 300  # without VGG16


def _build_bundle() -> None:
    for cmd in (
        [sys.executable, "packaging/build_models.py"],
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "service.spec"],
    ):
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False
        )
        assert proc.returncode == 0, (
            f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )


@pytest.fixture(scope="module")
def bundle() -> Path:
    """dist/dropsight, built here when DROPSIGHT_BUILD_FROZEN=1."""
    if os.environ.get("DROPSIGHT_BUILD_FROZEN") == "1":
        _build_bundle()
    elif not (DIST / "dropsight").is_file():
        pytest.skip(
            "no frozen bundle: run `make dist` first, or set DROPSIGHT_BUILD_FROZEN=1 to build it"
        )
    return DIST


def _make_debian_root(target: Path) -> None:
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        pytest.skip(
            f"no Debian root at {target} and debootstrap is not installed "
            "(apt-get install debootstrap)"
        )
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    proc = subprocess.run(
        [debootstrap, "--variant=minbase", SUITE, str(tmp)],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.skip(
            f"debootstrap could not make a {SUITE} root: "
            f"{proc.stderr[-1000:] or proc.stdout[-1000:]}"
        )
    tmp.rename(target)


def _is_mounted(path: Path) -> bool:
    real = os.path.realpath(path)
    with Path("/proc/self/mountinfo").open(encoding="utf-8") as fh:
        return any(line.split()[4] == real for line in fh)


@dataclass
class Chroot:
    """The cached Debian root, with this run's bundle and files under a private folder."""

    root: Path
    run_dir: str  # inside the root, e.g. /run-<id>

    @property
    def exe(self) -> str:
        return f"{self.run_dir}/dropsight/dropsight"

    def host(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    def env(self) -> dict[str, str]:
        # What a login would give; nothing from the host's Python setup leaks in.
        return {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "DROPSIGHT_HOME": f"{self.run_dir}/home",
        }

    def cmd(self, *args: str) -> list[str]:
        return [shutil.which("chroot") or "/usr/sbin/chroot", str(self.root), *args]

    def run(
        self, *args: str, timeout: float = 120, env: dict[str, str] | None = None, **kw
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.cmd(*args),
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kw,
        )


@pytest.fixture(scope="module")
def debian(bundle: Path) -> Iterator[Chroot]:
    if os.geteuid() != 0:
        pytest.skip("needs root (chroot and mounting /proc)")
    if shutil.which("chroot") is None:
        pytest.skip("chroot not found")
    DEBOOTSTRAP_DIR.parent.mkdir(parents=True, exist_ok=True)
    lock_path = DEBOOTSTRAP_DIR.with_name(DEBOOTSTRAP_DIR.name + ".lock")
    with lock_path.open("w") as lock:
        # One run at a time uses the cached root (it shares /proc).
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (DEBOOTSTRAP_DIR / "bin" / "sh").exists():
            _make_debian_root(DEBOOTSTRAP_DIR)
        run_dir = f"/run-{uuid.uuid4().hex[:8]}"
        chroot = Chroot(DEBOOTSTRAP_DIR, run_dir)
        proc_dir = DEBOOTSTRAP_DIR / "proc"
        mounted = False
        try:
            shutil.copytree(bundle, chroot.host(f"{run_dir}/dropsight"), symlinks=True)
            chroot.host(f"{run_dir}/home").mkdir()
            if not _is_mounted(proc_dir):
                subprocess.run(["mount", "-t", "proc", "proc", str(proc_dir)], check=True)
                mounted = True
            yield chroot
        finally:
            unmounted = mounted and subprocess.run(["umount", str(proc_dir)], check=False)
            if unmounted and unmounted.returncode != 0:  # still busy: detach it
                subprocess.run(["umount", "-l", str(proc_dir)], check=False)
            shutil.rmtree(chroot.host(run_dir), ignore_errors=True)


@pytest.fixture(scope="module")
def photos(debian: Chroot) -> dict[str, Path]:
    """Real photos (scikit-image's sample images) saved as JPEG inside the root."""
    skdata = pytest.importorskip("skimage.data")
    from PIL import Image

    folder = debian.host(f"{debian.run_dir}/photos")
    folder.mkdir()
    out = {}
    for name in ("chelsea", "coffee"):
        path = folder / f"{name}.jpg"
        Image.fromarray(getattr(skdata, name)()).save(path, quality=92)
        out[name] = path
    return out


def _schema_validator():
    import jsonschema

    schema = json.loads((ROOT / "config" / "sidecar.schema.json").read_text("utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _assert_cat(record: dict) -> None:
    _schema_validator().validate(record)
    assert record["status"] == "ok", record
    top = record["predictions"][0]
    assert top["class_index"] in CAT_CLASSES, record["predictions"]


def test_root_has_no_python(debian: Chroot) -> None:
    for pattern in ("usr/bin/python*", "usr/local/bin/python*", "usr/lib/python3*"):
        found = list(debian.root.glob(pattern))
        assert not found, f"the Debian root has Python: {found}"
    assert debian.run("sh", "-c", "command -v python3 python").returncode != 0


def test_bundle_has_no_tensorflow_and_fits(bundle: Path) -> None:
    bad = []
    total = 0
    for path in bundle.rglob("*"):
        name = path.name.lower()
        bad_dir = path.is_dir() and name in {"tensorflow", "keras", "torch", "tf_keras"}
        if bad_dir or name.startswith(("_pywrap_tensorflow", "libtensorflow", "libtorch")):
            bad.append(path)
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    assert not bad, f"TensorFlow/PyTorch parts in the bundle: {bad[:10]}"
    carried = sorted(p.stem for p in (bundle / "_internal" / "models").glob("*.tflite"))
    assert "efficientnet-lite0" in carried
    print(f"\nbundle: {total / 1e6:.0f} MB, models: {', '.join(carried)}")
    if "vgg16" not in carried:
        assert total < SIZE_TARGET_MB * 1e6, f"bundle is {total / 1e6:.0f} MB"


def test_classify_json_on_a_photo(debian: Chroot, photos: dict[str, Path]) -> None:
    inside = f"{debian.run_dir}/photos/chelsea.jpg"
    started = time.monotonic()
    proc = debian.run(debian.exe, "classify", "--json", inside)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout
    record = json.loads(lines[0])
    _assert_cat(record)
    assert re.fullmatch(r"(litert|openvino)-(fp32|bf16)", record["model"]["runtime"])
    top = record["predictions"][0]["label"]
    print(f"\nfrozen classify in the Debian root: {elapsed:.2f} s, {top}")


def test_classify_on_openvino_writes_nothing_into_home(
    debian: Chroot, photos: dict[str, Path]
) -> None:
    """The bundle's OpenVINO (CPU plugin, TFLite frontend) labels in the Python-less root,
    and its telemetry writes nothing into the home folder (no ~/intel)."""
    home = f"{debian.run_dir}/ov-home"
    debian.host(home).mkdir()
    config = f"{debian.run_dir}/openvino.toml"
    debian.host(config).write_text('[model]\nruntime = "openvino"\n', "utf-8")
    inside = f"{debian.run_dir}/photos/chelsea.jpg"
    command = ["classify", "--config", config, "--model", "efficientnet-lite0", "--json", inside]
    proc = debian.run(debian.exe, *command, env={**debian.env(), "HOME": home})
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.splitlines()[0])
    _assert_cat(record)
    assert record["model"]["runtime"] in ("openvino-fp32", "openvino-bf16"), record["model"]
    assert list(debian.host(home).iterdir()) == []


def test_classify_json_on_a_raw_photo(debian: Chroot, photos: dict[str, Path]) -> None:
    """LibRaw travels in the bundle: a DNG (pidng, no preview: demosaiced) in a bare root."""
    from PIL import Image

    from tests.daemon.photos.dng import make_dng

    folder = photos["chelsea"].parent
    make_dng(Image.open(photos["chelsea"]), folder / "chelsea.dng", preview=None)
    proc = debian.run(debian.exe, "classify", "--json", f"{debian.run_dir}/photos/chelsea.dng")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.splitlines()[0])
    _assert_cat(record)
    assert (record["image"]["width"], record["image"]["height"]) == (400, 600)


def test_ray_backfill_is_left_out_and_says_so(debian: Chroot, photos: dict[str, Path]) -> None:
    """Ray stays out of the frozen app; `backfill --ray` says where it lives instead."""
    proc = debian.run(debian.exe, "backfill", f"{debian.run_dir}/photos", "--ray", "auto")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "pip install 'dropsight[ray]'" in proc.stderr


def test_model_not_carried_is_a_clear_error(debian: Chroot, bundle: Path, photos) -> None:
    if (bundle / "_internal" / "models" / "vgg16.tflite").is_file():
        pytest.skip("this bundle carries VGG16")
    inside = f"{debian.run_dir}/photos/chelsea.jpg"
    proc = debian.run(debian.exe, "classify", "--model", "vgg16", "--json", inside)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "vgg16" in proc.stderr.lower() or "VGG16" in proc.stderr
    assert proc.stdout.strip() == ""


def _drop(src: Path, folder: Path, name: str) -> Path:
    """Copy a photo in the way a careful program does: a temp name, then a rename."""
    tmp = folder / f".{name}.part"
    shutil.copyfile(src, tmp)
    target = folder / name
    tmp.rename(target)
    return target


def _wait_for(path: Path, timeout: float, proc: subprocess.Popen) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if path.is_file():
            return time.monotonic()
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    out = proc.communicate(timeout=5)[0] if proc.poll() is not None else ""
    raise AssertionError(f"no sidecar {path.name} (service exit {proc.poll()}): {out}")


@pytest.mark.parametrize("streams", ["console", "none"])
def test_service_labels_photos_and_stops_on_sigterm(
    debian: Chroot, photos: dict[str, Path], streams: str
) -> None:
    """`none`: stdin/stdout/stderr closed, so Python has sys.stdout None (a windowed build)."""
    watch_inside = f"{debian.run_dir}/watch-{streams}"
    watch = debian.host(watch_inside)
    watch.mkdir()
    # One photo is waiting before the start (catch-up scan), one is dropped in later.
    _drop(photos["chelsea"], watch, "before.jpg")

    def close_std_streams() -> None:
        for fd in (0, 1, 2):
            os.close(fd)

    kw: dict = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    if streams == "none":
        kw = {"stdin": subprocess.DEVNULL, "preexec_fn": close_std_streams}
    started = time.monotonic()
    proc = subprocess.Popen(
        debian.cmd(
            debian.exe,
            *("service", "--watch", watch_inside, "--model", "efficientnet-lite0", "--xmp"),
        ),
        env=debian.env(),
        **kw,
    )
    try:
        first = _wait_for(watch / "before.jpg.json", 60, proc)
        dropped_at = time.monotonic()
        _drop(photos["chelsea"], watch, "after.jpg")
        second = _wait_for(watch / "after.jpg.json", 60, proc)
        for name in ("before.jpg", "after.jpg"):
            record = json.loads((watch / f"{name}.json").read_text("utf-8"))
            _assert_cat(record)
            assert record["model"]["name"] == "efficientnet-lite0"
            # The bundled exiv2 wrote the keywords (read back here by the host's exiv2).
            _wait_for(watch / f"{name}.xmp", 30, proc)
            keywords = packet.read_keywords(watch / f"{name}.xmp")[packet.SUBJECT]
            assert "cat" in keywords and "animal" in keywords, keywords
        print(
            f"\nfrozen service ({streams} streams): start -> first sidecar "
            f"{first - started:.2f} s; drop -> sidecar {second - dropped_at:.2f} s"
        )
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        rc = proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    output = output or ""
    assert rc == 0, output
    assert "Traceback" not in output
    log = debian.host(f"{debian.run_dir}/home/log/dropsight.log")
    with contextlib.suppress(OSError):
        assert "Traceback" not in log.read_text("utf-8")


def test_tray_launcher_without_a_display_fails_cleanly(debian: Chroot) -> None:
    """The windowed launcher starts (pystray and Tk are bundled) and explains a missing display."""
    tray = f"{debian.run_dir}/dropsight/dropsight-tray"
    proc = debian.run(tray, "--no-start-service", timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "ModuleNotFoundError" not in proc.stderr


def test_linux_release_install_upgrade_uninstall(debian: Chroot, photos: dict[str, Path]) -> None:
    """install.sh/uninstall.sh from the release layout, in a home inside the Debian root."""
    release = debian.host(f"{debian.run_dir}/release")
    shutil.copytree(
        debian.host(f"{debian.run_dir}/dropsight"),
        release / "dropsight",
        symlinks=True,
        copy_function=os.link,
    )
    linux = ROOT / "packaging" / "linux"
    for name in ("install.sh", "uninstall.sh"):
        shutil.copy2(linux / name, release / name)
    (release / "share").mkdir()
    for name in ("dropsight.desktop", "dropsight.service"):
        shutil.copy2(linux / name, release / "share" / name)
    home_inside = f"{debian.run_dir}/user"
    home = debian.host(home_inside)
    home.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": home_inside}
    rel = f"{debian.run_dir}/release"

    proc = debian.run("sh", f"{rel}/install.sh", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    app = home / ".local/share/dropsight/app"
    expected = [
        app / "dropsight",
        app / "dropsight-tray",
        home / ".local/bin/dropsight",
        home / ".local/bin/dropsight-tray",
        home / ".local/share/applications/dropsight.desktop",
        home / ".config/autostart/dropsight.desktop",
        home / ".config/systemd/user/dropsight.service",
        home / ".local/share/dropsight/uninstall.sh",
    ]
    for path in expected:
        assert path.exists() or path.is_symlink(), f"{path} not installed"
    unit = (home / ".config/systemd/user/dropsight.service").read_text()
    assert f'ExecStart="{home_inside}/.local/share/dropsight/app/dropsight" service' in unit
    desktop = (home / ".local/share/applications/dropsight.desktop").read_text()
    assert f'Exec="{home_inside}/.local/share/dropsight/app/dropsight-tray"' in desktop

    # The installed command works from its link, with the user's real config folders.
    photo = f"{debian.run_dir}/photos/chelsea.jpg"
    proc = debian.run(f"{home_inside}/.local/bin/dropsight", "classify", "--json", photo, env=env)
    assert proc.returncode == 0, proc.stderr
    _assert_cat(json.loads(proc.stdout.splitlines()[0]))

    watch_inside = f"{home_inside}/Pictures"
    watch = debian.host(watch_inside)
    watch.mkdir()
    config = home / ".config/dropsight/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[watch]\nfolders = ["{watch_inside}"]\n')

    def start_service() -> subprocess.Popen[bytes]:
        service = subprocess.Popen(
            debian.cmd(f"{home_inside}/.local/bin/dropsight", "service"),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Running once the control API answers.
        end = time.monotonic() + 60
        while time.monotonic() < end:
            status = debian.run(f"{home_inside}/.local/bin/dropsight", "status", env=env)
            if status.returncode == 0:
                return service
            assert service.poll() is None, "the installed service exited at start"
            time.sleep(0.2)
        service.kill()
        service.wait()
        raise AssertionError("the installed service did not come up")

    for step in ("upgrade", "uninstall"):
        service = start_service()
        try:
            _drop(photos["coffee"], watch, f"{step}.jpg")
            _wait_for(watch / f"{step}.jpg.json", 60, service)
            script = (
                f"{rel}/install.sh"
                if step == "upgrade"
                else (f"{home_inside}/.local/share/dropsight/uninstall.sh")
            )
            proc = debian.run("sh", script, env=env)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            # Stopped first (cleanly, through the control API).
            assert service.wait(timeout=30) == 0
        finally:
            if service.poll() is None:
                service.kill()
                service.wait()
        if step == "upgrade":
            assert (app / "dropsight").is_file()

    for path in expected:
        assert not (path.exists() or path.is_symlink()), f"{path} left behind"
    assert not (home / ".local/share/dropsight").exists()
    # The user's things stay.
    assert config.is_file()
    assert (watch / "upgrade.jpg.json").is_file()
    assert (watch / "uninstall.jpg.json").is_file()


@pytest.fixture()
def xvfb_display() -> Iterator[str]:
    """A private Xvfb screen (its number chosen by Xvfb itself)."""
    exe = shutil.which("Xvfb")
    if exe is None:
        pytest.skip("Xvfb not installed (Debian package `xvfb`)")
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(
        [exe, "-displayfd", str(write_fd), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as fh:
            number = fh.readline().strip()
        if not number:
            pytest.skip("Xvfb did not start")
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_frozen_viewer_opens_a_photo(bundle: Path, xvfb_display: str, tmp_path: Path) -> None:
    """The windowed launcher's viewer (Tk + ImageTk) runs from the bundle and stays up."""
    from PIL import Image

    skdata = pytest.importorskip("skimage.data")
    photo = tmp_path / "chelsea.jpg"
    Image.fromarray(skdata.chelsea()).save(photo)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DISPLAY": xvfb_display,
        "DROPSIGHT_HOME": str(tmp_path / "home"),
    }
    viewer = subprocess.Popen(
        [str(bundle / "dropsight-tray"), "--viewer", "--image", str(photo)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(6)
        alive = viewer.poll() is None
    finally:
        viewer.terminate()
        try:
            output, _ = viewer.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            viewer.kill()
            output, _ = viewer.communicate()
    assert alive, f"the frozen viewer exited ({viewer.returncode}):\n{output}"
    assert "Traceback" not in output, output
