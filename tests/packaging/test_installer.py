"""installer.nsi: compiles with -WX; installs and uninstalls silently under Wine.

The Wine test packages a staged bundle whose `dropsight.exe` and `dropsight-tray.exe` are tiny
64-bit NSIS programs (the tray one just waits, standing in for a running app), installs it
into a fresh WINEPREFIX as an ordinary user would (per user, default folder), checks the
files, the Start-menu shortcut, the HKCU Run value and the Add/Remove Programs entry, then
uninstalls while the "tray" is running and checks that it was stopped, that everything the
installer wrote is gone, and that the user's own files are kept.

Needs Debian's `nsis` (makensis with amd64 stubs) and `wine64`; skips with the reason
otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NSI = ROOT / "installer.nsi"
RUN_KEY = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run"
ARP_KEY = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Uninstall\Dropsight"
AMD64_STUBS = Path("/usr/share/nsis/Stubs/lzma_solid-amd64-unicode")

STUB_NSI = r"""
Target amd64-unicode
!include "FileFunc.nsh"
OutFile "${OUT}"
Name "stub"
SilentInstall silent
RequestExecutionLevel user
Section
  ${GetParameters} $0
  StrCmp $0 "stop" done
  Sleep 300000
  done:
SectionEnd
"""


def _makensis() -> str:
    exe = shutil.which("makensis")
    if exe is None:
        pytest.skip("makensis not installed (Debian package `nsis`)")
    return exe


def _wine64() -> str:
    exe = shutil.which("wine64") or (
        "/usr/lib/wine/wine64" if Path("/usr/lib/wine/wine64").is_file() else None
    )
    if exe is None:
        pytest.skip("wine64 not installed (Debian package `wine64`)")
    return exe


def _compile(makensis: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [makensis, "-WX", "-V2", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"makensis {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_installer_compiles_without_a_windows_bundle(tmp_path: Path) -> None:
    """The documented `makensis -WX installer.nsi` works on a machine with no Windows build."""
    makensis = _makensis()
    out = tmp_path / "DropsightSetup-check.exe"
    _compile(makensis, f"-DOUTFILE={out}", str(NSI))
    assert out.stat().st_size > 10_000


class Wine:
    """wine64 in its own prefix."""

    def __init__(self, exe: str, prefix: Path) -> None:
        self.exe = exe
        # wine links the prefix's profile folders (My Pictures, Desktop) to $HOME and writes
        # menu entries under the XDG folders: all of it stays beside the prefix.
        home = prefix.parent / f"{prefix.name}-home"
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "WINEPREFIX": str(prefix),
            "WINEDEBUG": "-all",
            "WINEDLLOVERRIDES": "mscoree,mshtml=",  # no Mono/Gecko install prompts
            "DISPLAY": "",
        }
        self.prefix = prefix

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.exe, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [self.exe, *args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def reg_value(self, key: str, name: str) -> str | None:
        proc = self.run("reg", "query", key, "/v", name)
        if proc.returncode != 0:
            return None
        for line in proc.stdout.splitlines():
            parts = line.split(None, 2)
            if len(parts) == 3 and parts[0] == name:
                return parts[2].strip()
        return None

    def key_exists(self, key: str) -> bool:
        return self.run("reg", "query", key).returncode == 0

    def stop_server(self) -> None:
        server = shutil.which("wineserver") or "/usr/lib/wine/wineserver64"
        subprocess.run([server, "-k"], env=self.env, capture_output=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory):
    """One prefix for this module (creating one takes ~10 s); each test uninstalls."""
    prefix = tmp_path_factory.mktemp("wine") / "prefix"
    w = Wine(_wine64(), prefix)
    proc = w.run("wineboot", "-i", timeout=300)
    if not (prefix / "drive_c").is_dir():
        pytest.skip(f"wine64 could not create a prefix: {proc.stderr[-500:]}")
    try:
        yield w
    finally:
        w.stop_server()


def _staged_bundle(makensis: str, tmp_path: Path) -> Path:
    """A bundle-shaped folder whose executables are real (tiny) Windows programs."""
    stage = tmp_path / "stage"
    (stage / "_internal" / "models").mkdir(parents=True)
    (stage / "_internal" / "base_library.zip").write_bytes(b"stand-in")
    (stage / "_internal" / "models" / "efficientnet-lite0.json").write_text("{}")
    stub = tmp_path / "stub.nsi"
    stub.write_text(STUB_NSI)
    for name in ("dropsight.exe", "dropsight-tray.exe"):
        _compile(makensis, f"-DOUT={stage / name}", str(stub), cwd=tmp_path)
    return stage


def _home(wine: Wine) -> Path:
    """The prefix user's profile folder (named after the Unix user)."""
    users = wine.prefix / "drive_c" / "users"
    homes = [p for p in users.iterdir() if (p / "AppData" / "Local").is_dir()]
    assert len(homes) == 1, homes
    return homes[0]


def _wait_gone(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def test_silent_install_and_uninstall_under_wine(tmp_path: Path, wine: Wine) -> None:
    makensis = _makensis()
    if not AMD64_STUBS.exists():
        pytest.skip(f"makensis has no amd64 stubs ({AMD64_STUBS}); wine64 runs only 64-bit")
    stage = _staged_bundle(makensis, tmp_path)
    setup = tmp_path / "DropsightSetup-test.exe"
    _compile(
        makensis,
        "-DNSIS_TARGET=amd64-unicode",
        f"-DDIST_DIR={stage}",
        f"-DOUTFILE={setup}",
        "-DVERSION=0.2.0",
        str(NSI),
    )

    proc = wine.run(str(setup), "/S", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]

    home = _home(wine)
    instdir = home / "AppData" / "Local" / "Programs" / "Dropsight"
    win_instdir = f"C:\\users\\{home.name}\\AppData\\Local\\Programs\\Dropsight"
    for rel in (
        "dropsight.exe",
        "dropsight-tray.exe",
        "uninstall.exe",
        "_internal/base_library.zip",
        "_internal/models/efficientnet-lite0.json",
    ):
        assert (instdir / rel).is_file(), f"{rel} not installed"
    shortcut = (
        home
        / "AppData"
        / "Roaming"
        / "Microsoft"
        / "Windows"
        / "Start Menu"
        / "Programs"
        / "Dropsight.lnk"
    )
    assert shortcut.is_file()
    assert wine.reg_value(RUN_KEY, "Dropsight") == f'"{win_instdir}\\dropsight-tray.exe"'
    assert wine.reg_value(ARP_KEY, "DisplayName") == "Dropsight"
    assert wine.reg_value(ARP_KEY, "InstallLocation") == win_instdir

    # The user's own things: config/logs (platformdirs: %LOCALAPPDATA%\dropsight), a sidecar
    # beside a photo, and VGG16 weights they put next to the app.
    config = home / "AppData" / "Local" / "dropsight" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[model]\n")
    sidecar = home / "Pictures" / "IMG_0001.jpg.json"
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    sidecar.write_text("{}")
    weights = instdir / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    weights.parent.mkdir()
    weights.write_bytes(b"weights")

    # Uninstall while the app runs (a tray and a service that does not stop when asked): the
    # uninstaller must end both before removing files.
    running = [
        wine.popen(str(instdir / "dropsight-tray.exe")),
        wine.popen(str(instdir / "dropsight.exe"), "service"),
    ]
    try:
        time.sleep(2)
        assert all(p.poll() is None for p in running), "the stand-in app did not start"
        proc = wine.run(str(instdir / "uninstall.exe"), "/S", f"_?={win_instdir}", timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        for p in running:
            assert _wait_gone(p, 30), "the uninstaller left the running app alive"
    finally:
        for p in running:
            if p.poll() is None:
                p.kill()
                p.wait()

    for rel in ("dropsight.exe", "dropsight-tray.exe", "_internal"):
        assert not (instdir / rel).exists(), f"{rel} left behind"
    assert not shortcut.exists()
    assert wine.reg_value(RUN_KEY, "Dropsight") is None
    assert not wine.key_exists(ARP_KEY)
    assert config.read_text() == "[model]\n"
    assert sidecar.read_text() == "{}"
    assert weights.read_bytes() == b"weights"


def test_reinstall_without_autostart_and_uninstall_from_arp(tmp_path: Path, wine: Wine) -> None:
    """/NOAUTOSTART on a re-install removes the Run value; the ARP uninstall string works."""
    makensis = _makensis()
    if not AMD64_STUBS.exists():
        pytest.skip(f"makensis has no amd64 stubs ({AMD64_STUBS}); wine64 runs only 64-bit")
    instdir = _home(wine) / "AppData" / "Local" / "Programs" / "Dropsight"
    shutil.rmtree(instdir, ignore_errors=True)  # what another test kept (the user's files)
    stage = _staged_bundle(makensis, tmp_path)
    setup = tmp_path / "DropsightSetup-test.exe"
    _compile(
        makensis,
        "-DNSIS_TARGET=amd64-unicode",
        f"-DDIST_DIR={stage}",
        f"-DOUTFILE={setup}",
        str(NSI),
    )
    assert wine.run(str(setup), "/S", timeout=300).returncode == 0
    assert wine.reg_value(RUN_KEY, "Dropsight") is not None
    assert wine.run(str(setup), "/S", "/NOAUTOSTART", timeout=300).returncode == 0
    assert wine.reg_value(ARP_KEY, "DisplayName") == "Dropsight"
    assert wine.reg_value(RUN_KEY, "Dropsight") is None

    # As Add/Remove Programs does it: the uninstaller copies itself to %TEMP% and returns.
    assert (instdir / "dropsight.exe").is_file()
    quiet = wine.reg_value(ARP_KEY, "QuietUninstallString")
    assert quiet is not None
    exe, _, args = quiet.partition('" ')
    proc = wine.run(exe.strip('"'), *args.split(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    deadline = time.monotonic() + 60
    while instdir.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not instdir.exists(), f"left behind: {sorted(p.name for p in instdir.iterdir())[:20]}"
    assert not wine.key_exists(ARP_KEY)
