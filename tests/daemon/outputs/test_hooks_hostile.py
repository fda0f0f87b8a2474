"""Issue 20 items 4-6: a hook's output stays bounded, its children die with it, its braces
are checked at load."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dropsight.config.settings import ConfigError, HookSettings, Settings, parse
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.outputs.hooks import HookSink
from dropsight.daemon.outputs.protocol import Context, Written
from tests.daemon.outputs.test_sidecar import FACTS, MODEL

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")


def sink_for(argv: list[str], timeout_s: float = 30.0) -> tuple[HookSink, list[str]]:
    errors: list[str] = []
    sink = HookSink(Context(on_error=lambda _p, m: errors.append(m)))
    sink.configure(Settings(hooks=HookSettings(on_result=tuple(argv), timeout_s=timeout_s)))
    return sink, errors


def one_result(tmp_path: Path) -> list[Written]:
    photo = tmp_path / "cat.jpg"
    photo.write_bytes(b"x")
    record = sidecar.build("cat.jpg", FACTS, MODEL, [])
    return [Written(photo, tmp_path, tmp_path / "cat.jpg.json", record)]


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent that never reaps it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.fixture
def peak_rss() -> Iterator[Callable[[], int]]:
    """The highest RSS seen while the test runs (sampled every 10 ms)."""
    peak = [rss_bytes()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            peak[0] = max(peak[0], rss_bytes())

    t = threading.Thread(target=sample, name="rss-sampler")
    t.start()
    yield lambda: peak[0]
    stop.set()
    t.join(5)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_a_flood_of_output_is_not_kept(tmp_path: Path, peak_rss: Callable[[], int]) -> None:
    script = (
        "import sys\n"
        "block = b'y' * (1 << 20)\n"
        "for _ in range(400): sys.stdout.buffer.write(block)\n"
        "for _ in range(20): sys.stderr.buffer.write(block)\n"
        "sys.stderr.write('\\nthe real reason\\n'); sys.exit(3)\n"
    )
    sink, errors = sink_for([sys.executable, "-c", script, "{photo}"])
    before = rss_bytes()
    sink.accept(one_result(tmp_path))
    grew = peak_rss() - before
    assert grew < 64 << 20, f"RSS grew by {grew >> 20} MB for 420 MB of hook output"
    assert errors == ["on_result hook failed: exit 3 the real reason"]


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs sh")
def test_a_stopped_hook_takes_its_children_along(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    sink, errors = sink_for(["sh", "-c", f"sleep 1000 & echo $! > {pidfile}; wait"], 1)
    sink.accept(one_result(tmp_path))
    assert errors == ["on_result hook failed: took longer than 1 s; stopped"]
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the hook's child outlived it"


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs sh")
def test_a_hook_that_backgrounds_a_child_and_exits_0_succeeds(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    sink, errors = sink_for(["sh", "-c", f"sleep 1000 & echo $! > {pidfile}; exit 0"], 5)
    started = time.monotonic()
    sink.accept(one_result(tmp_path))
    took = time.monotonic() - started
    assert errors == [], errors
    assert took < 4, f"waited {took:.1f} s on a pipe the background child held"
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "an orphan left behind"


@pytest.mark.parametrize(
    ("arg", "said"),
    [
        ("{print $1}", "unknown placeholder {print $1}"),
        ("{photo", "expected '}'"),
        ("}", "Single '}'"),
        ("{photo!r}", "takes no format spec"),
        ("{0}", "unknown placeholder {0}"),
    ],
)
def test_hook_placeholders_are_checked_at_load(arg: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"hooks": {"on_result": ["awk", arg, "{photo}"]}}, "config.toml")
    message = str(caught.value)
    assert "hooks.on_result" in message and said in message
    assert "{photo}, {sidecar}" in message and "{{" in message


def test_literal_braces_reach_the_hook(tmp_path: Path) -> None:
    settings = parse({"hooks": {"on_result": ["awk", "{{print $1}}", "{photo}"]}}, "c.toml")
    from dropsight.daemon.outputs.hooks import command_for

    argv = command_for(settings.hooks.on_result, one_result(tmp_path)[0])
    assert argv == ["awk", "{print $1}", str(tmp_path / "cat.jpg")]


@pytest.mark.parametrize("ext", ["json", ".JSON", "xmp", "dropsight-tmp"])
def test_our_own_extensions_are_refused(ext: str) -> None:
    with pytest.raises(ConfigError, match=r"watch\.extensions.*Dropsight's own files"):
        parse({"watch": {"extensions": ["jpg", ext]}}, "config.toml")


def test_the_photo_filter_never_takes_our_files(tmp_path: Path) -> None:
    from dropsight.config.settings import WatchSettings
    from dropsight.daemon.photos.filter import PhotoFilter

    f = PhotoFilter.from_settings(WatchSettings(extensions=frozenset({"jpg", "json", "xmp"})))
    assert f.accepts(tmp_path / "a.jpg") and not f.accepts(tmp_path / "a.jpg.json")
    assert not f.accepts(tmp_path / "a.xmp")


def test_the_temp_suffix_is_the_writers() -> None:
    from dropsight.config.settings import NOT_PHOTO_EXTENSIONS
    from dropsight.daemon.core.atomic import TEMP_SUFFIX

    assert TEMP_SUFFIX.lstrip(".") in NOT_PHOTO_EXTENSIONS
