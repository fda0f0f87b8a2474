"""`dropsight service` as a real process with the real offline model: crashes, signals, locks."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.daemon.helpers import (
    SlowClients,
    dropsight,
    load_valid,
    make_photo,
    sidecars,
    temp_files,
    wait_for,
)

MODEL = "efficientnet-lite0"


_LIMIT_THEN_EXEC = (
    "import os, resource as r, sys; "
    "r.setrlimit(r.RLIMIT_NOFILE, ({}, r.getrlimit(r.RLIMIT_NOFILE)[1])); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


class ServiceProcess:
    """A `python -m daemon service` child process with its output captured to a file."""

    def __init__(
        self,
        folder: Path | None,
        log: Path,
        model: str | None = MODEL,
        extra: Sequence[str] = (),
        *,
        nofile: int | None = None,
    ) -> None:
        self.log = log
        self._out = log.open("ab")
        watch = ["--watch", str(folder)] if folder else []
        choose = ["--model", model] if model else []
        # A lowered descriptor limit is set by a tiny launcher that then becomes the service.
        launch = [] if nofile is None else ["-c", _LIMIT_THEN_EXEC.format(nofile)]
        self.proc = subprocess.Popen(
            [sys.executable, *launch, "-m", "dropsight.daemon", "service", *watch, *choose, *extra],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def output(self) -> str:
        return self.log.read_text("utf-8", errors="replace")

    def wait_ready(self, timeout_s: float = 180) -> None:
        wait_for(
            lambda: (
                "model efficientnet-lite0 ready" in self.output() or self.proc.poll() is not None
            ),
            timeout_s,
            "model ready",
        )
        # The model may be ready before the control API has published its endpoint.
        control = Path(os.environ["DROPSIGHT_HOME"]) / "state" / "control.json"
        wait_for(lambda: control.exists() or self.proc.poll() is not None, 30, "the control API")
        assert self.proc.poll() is None, self.output()

    def finish(self, sig: int = signal.SIGTERM, timeout_s: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout_s)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._out.close()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    started: list[ServiceProcess] = []
    yield started
    for s in started:
        s.finish(signal.SIGKILL)


@pytest.fixture
def status_file(app_home: Path) -> Path:
    return app_home / "state" / "control.json"


def _start(
    services: list[ServiceProcess],
    folder: Path | None,
    tmp_path: Path,
    model: str | None = MODEL,
    extra: Sequence[str] = (),
    *,
    nofile: int | None = None,
) -> ServiceProcess:
    log = tmp_path / f"service-{len(services)}.log"
    s = ServiceProcess(folder, log, model, extra, nofile=nofile)
    services.append(s)
    return s


def test_real_model_labels_dropped_photos_and_stops_cleanly_on_sigterm(
    tmp_path: Path, services: list[ServiceProcess], photos: dict[str, Path]
) -> None:
    from dropsight.daemon.service import startfail

    folder = tmp_path / "in"
    folder.mkdir()
    startfail.record("config error: an earlier start failed")
    svc = _start(services, folder, tmp_path)
    svc.wait_ready()
    wait_for(lambda: startfail.read() is None, 10, "the old start failure forgotten")
    shutil.copy(photos["chelsea"], folder / "cat.jpg")
    shutil.copy(photos["coffee"], folder / "coffee.jpg")
    wait_for(lambda: len(sidecars(folder)) == 2, 30, "sidecars")
    cat = load_valid(folder / "cat.jpg.json")
    assert 281 <= cat["predictions"][0]["class_index"] <= 285
    assert cat["model"]["name"] == MODEL
    assert re.fullmatch(r"(litert|openvino)-(fp32|bf16)", cat["model"]["runtime"])
    coffee = {p["class_index"] for p in load_valid(folder / "coffee.jpg.json")["predictions"]}
    assert coffee & {967, 968, 504}
    started = time.monotonic()
    assert svc.finish(signal.SIGTERM) == 0
    assert time.monotonic() - started < 10
    assert "stopped" in svc.output()


def test_second_instance_is_refused(tmp_path: Path, services: list[ServiceProcess]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    first = _start(services, folder, tmp_path)
    first.wait_ready()
    second = _start(services, folder, tmp_path)
    assert second.proc.wait(60) == 1
    assert "already running" in second.output()
    assert f"pid {first.proc.pid}" in second.output()
    assert first.proc.poll() is None


def test_kill_9_mid_burst_then_restart_loses_and_duplicates_nothing(
    tmp_path: Path, services: list[ServiceProcess], photos: dict[str, Path]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    src = tmp_path / "src"
    n = 400
    for i in range(n):
        make_photo(src / f"{i:03d}.jpg", seed=i, size=(640, 480))
    svc = _start(services, folder, tmp_path)
    svc.wait_ready()
    for i in range(n):
        shutil.copy(src / f"{i:03d}.jpg", folder / f"{i:03d}.jpg")
    wait_for(lambda: len(sidecars(folder)) >= 40, 60, "some sidecars")
    svc.proc.kill()  # SIGKILL: no cleanup at all
    svc.proc.wait()
    done_before = {p: p.stat().st_mtime_ns for p in sidecars(folder)}
    assert len(done_before) < n, "the burst finished before the kill; make it bigger"
    for p in done_before:
        load_valid(p)  # every sidecar on disk is complete JSON, even right after a kill

    again = _start(services, folder, tmp_path)
    again.wait_ready()
    wait_for(lambda: len(sidecars(folder)) == n, 120, f"{n} sidecars after restart")
    assert again.finish(signal.SIGTERM) == 0
    assert {p.name for p in sidecars(folder)} == {f"{i:03d}.jpg.json" for i in range(n)}
    for p in sidecars(folder):
        record = load_valid(p)
        assert record["status"] == "ok"
    # What was done before the kill was not redone after the restart.
    assert {p: p.stat().st_mtime_ns for p in done_before} == done_before
    assert not temp_files(folder)


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="needs exiftool")
def test_kill_9_with_xmp_on_never_tears_an_xmp_and_restart_completes_them(
    tmp_path: Path, services: list[ServiceProcess]
) -> None:
    from dropsight.daemon.outputs.xmp import packet

    folder = tmp_path / "in"
    n = 240
    for i in range(n):
        make_photo(tmp_path / "src" / f"{i:03d}.jpg", seed=i, size=(640, 480))
    folder.mkdir()
    # Noise photos score low: every label counts as a keyword here, so every photo has some.
    config = tmp_path / "config.toml"
    config.write_text("[output]\nxmp_min_score = 0.0\n", "utf-8")
    extra = ["--xmp", "--config", str(config)]
    svc = _start(services, folder, tmp_path, extra=extra)
    svc.wait_ready()
    for i in range(n):
        shutil.copy(tmp_path / "src" / f"{i:03d}.jpg", folder / f"{i:03d}.jpg")
    wait_for(lambda: len(list(folder.glob("*.xmp"))) >= 20, 60, "some XMP files")
    svc.proc.kill()
    svc.proc.wait()
    written = sorted(folder.glob("*.xmp"))
    assert len(written) < n, "the burst finished before the kill; make it bigger"
    # exiftool reads every file on disk right after the kill: none is torn.
    out = subprocess.run(
        ["exiftool", "-j", "-Subject", *map(str, written)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert all(tags.get("Subject") for tags in json.loads(out.stdout))

    again = _start(services, folder, tmp_path, extra=extra)
    again.wait_ready()
    wait_for(lambda: len(sidecars(folder)) == n, 120, f"{n} sidecars after restart")
    wait_for(lambda: len(list(folder.glob("*.xmp"))) == n, 60, f"{n} XMP files after restart")
    assert again.finish(signal.SIGTERM) == 0
    for i in range(n):
        photo = folder / f"{i:03d}.jpg"
        record = load_valid(photo.with_name(photo.name + ".json"))
        want = list(packet.keywords(record, 0.0).flat)  # type: ignore[arg-type]
        assert packet.read_keywords(packet.xmp_path(photo))[packet.ADDED] == want, photo.name
    assert not temp_files(folder)


def test_fallback_model_is_used_loudly_when_vgg16_weights_are_missing(
    tmp_path: Path, services: list[ServiceProcess], photos: dict[str, Path], status_file: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    # No --model: the default vgg16 has no weights here (KERAS_HOME is an empty temp dir).
    svc = _start(services, folder, tmp_path, model=None)
    svc.wait_ready()
    assert "VGG16 weights not found" in svc.output()
    shutil.copy(photos["chelsea"], folder / "cat.jpg")
    wait_for(lambda: (folder / "cat.jpg.json").exists(), 30, "sidecar")
    model = load_valid(folder / "cat.jpg.json")["model"]
    assert model["name"] == MODEL
    assert model["fallback_for"] == "vgg16"
    out = subprocess.run(
        [sys.executable, "-m", "dropsight.daemon", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    status = json.loads(out.stdout)
    assert status["model"]["fallback"] is True
    assert status["model"]["requested"] == "vgg16"
    assert svc.finish() == 0


def test_no_folder_configured_watches_the_default_folder(
    tmp_path: Path, app_home: Path, services: list[ServiceProcess], photos: dict[str, Path]
) -> None:
    svc = _start(services, None, tmp_path)
    svc.wait_ready()
    default = app_home / "Pictures" / "Dropsight"
    assert default.is_dir()
    assert f"no folders configured: watching {default}" in svc.output()
    shutil.copy(photos["chelsea"], default / "cat.jpg")
    wait_for(lambda: (default / "cat.jpg.json").exists(), 30, "sidecar in the default folder")
    assert svc.finish() == 0


def _descriptors(pid: int) -> int:
    return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())


def _threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Threads:")).split()[1])


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
def test_slow_clients_without_the_token_cannot_starve_the_service(
    tmp_path: Path, services: list[ServiceProcess], photos: dict[str, Path], status_file: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    # 300 slow clients against 256 descriptors: before the cap, the API stopped answering.
    svc = _start(services, folder, tmp_path, nofile=256)
    svc.wait_ready()
    pid, port = svc.proc.pid, json.loads(status_file.read_text())["port"]
    wait_for(lambda: "library index under" in svc.output(), 30, "the first scan done")
    fds, threads = _descriptors(pid), _threads(pid)
    most_fds = most_threads = 0

    def sample() -> bool:
        nonlocal most_fds, most_threads
        most_fds = max(most_fds, _descriptors(pid))
        most_threads = max(most_threads, _threads(pid))
        return True

    with SlowClients(port, count=300, every_s=2.0) as slow:
        wait_for(lambda: sample() and slow.rounds >= 2, 60, "two rounds of slow bytes")
        cpu, started = _cpu_s(pid), time.monotonic()
        # The token still gets through: status, then a photo is labelled meanwhile.
        status = dropsight("status", "--json", timeout_s=60)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["pid"] == pid
        shutil.copy(photos["chelsea"], folder / "cat.jpg")
        wait_for(lambda: sample() and (folder / "cat.jpg.json").exists(), 60, "the sidecar")
        assert load_valid(folder / "cat.jpg.json")["status"] == "ok"
        wait_for(lambda: sample() and slow.rounds >= 6, 60, "more rounds of slow bytes")
        busy_s, wall_s = _cpu_s(pid) - cpu, time.monotonic() - started
        stop = dropsight("stop", timeout_s=60)
        assert stop.returncode == 0, stop.stderr
        assert svc.proc.wait(60) == 0, svc.output()
    print(  # the figures behind the closing note (`pytest -s -k slow_clients`)
        f"descriptors {fds} -> {most_fds}, threads {threads} -> {most_threads}, "
        f"CPU {busy_s:.2f} s in {wall_s:.1f} s"
    )
    # The API holds a bounded few sockets and threads (connlimit.Limits: 64 + 32 + 8).
    assert most_fds <= fds + 112, (fds, most_fds)
    assert most_threads <= threads + 44, (threads, most_threads)
    # Waiting clients cost no spinning: far below one core (labelling the photo included).
    assert busy_s < 0.5 * wall_s, (busy_s, wall_s)
    assert "Too many open files" not in svc.output()


def test_a_folder_name_that_is_not_utf8_shows_in_status_and_stop_stops(
    tmp_path: Path, services: list[ServiceProcess], photos: dict[str, Path], status_file: Path
) -> None:
    folder = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9"))  # Latin-1 bytes
    folder.mkdir()
    svc = _start(services, folder, tmp_path)
    svc.wait_ready()
    shutil.copy(photos["chelsea"], folder / os.fsdecode(b"chat-\xe9.jpg"))
    wait_for(lambda: len(sidecars(folder)) == 1, 60, "the sidecar")
    # `dropsight()` reads the output as UTF-8 text, as scripts and terminals do.
    as_json = dropsight("status", "--json", timeout_s=60)
    assert as_json.returncode == 0, as_json.stderr
    status = json.loads(as_json.stdout)
    assert [os.fsencode(f["path"]) for f in status["folders"]] == [os.fsencode(folder)]
    assert os.fsencode(status["recent"][0]["image"]).endswith(b"/caf\xe9/chat-\xe9.jpg")
    text = dropsight("status", timeout_s=60)
    assert text.returncode == 0, text.stderr
    assert "caf\\udce9 (ok)" in text.stdout
    assert "chat-\\udce9.jpg: " in text.stdout
    stop = dropsight("stop", timeout_s=60)
    assert stop.returncode == 0, stop.stderr
    assert svc.proc.wait(60) == 0, svc.output()
