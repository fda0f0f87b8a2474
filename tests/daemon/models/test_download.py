"""The weights downloader against a real HTTP server on 127.0.0.1: resume, verify, fail clearly."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from random import Random
from typing import Any

import pytest

from dropsight.daemon.models import download
from dropsight.daemon.models.download import (
    CHUNK_BYTES,
    DownloadError,
    Progress,
    fetch,
    import_file,
    part_path,
    verify,
)

PAYLOAD = Random(1).randbytes(5_000_000)
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()
WRONG = bytes(b ^ 0xFF for b in PAYLOAD[:4096]) + PAYLOAD[4096:]  # same size, other bytes


@dataclass
class Behaviour:
    """How the test server answers, and what it saw."""

    drop_after: int | None = None  # first request: send this many body bytes, then hang up
    ignore_range: bool = False  # answer 200 with the whole file, whatever Range says
    corrupt: bool = False  # serve bytes whose md5 is not PAYLOAD_MD5
    redirect_to: str | None = None  # answer 302 to this address
    status: int | None = None  # answer with this error status
    ranges: list[str | None] = field(default_factory=list)  # each request's Range header

    @property
    def requests(self) -> int:
        return len(self.ranges)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads: nothing leaks
    behaviour: Behaviour


class _Handler(BaseHTTPRequestHandler):
    timeout = 10  # a handler never waits for ever on a client that went away

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test output is for failures."""

    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        how = server.behaviour
        rng = self.headers.get("Range")
        how.ranges.append(rng)
        first = how.requests == 1
        if how.status is not None:
            self.send_error(how.status)
            return
        if how.redirect_to is not None:
            self.send_response(302)
            self.send_header("Location", how.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = WRONG if how.corrupt else PAYLOAD
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if match and not how.ignore_range:
            start = int(match[1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        data = body[start:]
        if first and how.drop_after is not None:
            data = data[: how.drop_after]
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for i in range(0, len(data), 256 * 1024):
                self.wfile.write(data[i : i + 256 * 1024])


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to 127.0.0.1 go straight there, whatever proxy the environment names."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)


@pytest.fixture
def server() -> Iterator[_Server]:
    """A threaded HTTP server on 127.0.0.1 serving PAYLOAD with Range support."""
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.behaviour = Behaviour()
    thread = threading.Thread(
        target=srv.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http-server"
    )
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


def url_of(srv: _Server) -> str:
    host, port = srv.server_address[:2]
    return f"http://{host!s}:{port}/vgg16.h5"


def test_full_download_reports_monotonic_progress(server: _Server, tmp_path: Path) -> None:
    target = tmp_path / "models" / "vgg16.h5"  # the folder does not exist yet
    seen: list[Progress] = []
    assert fetch(url_of(server), target, md5=PAYLOAD_MD5, on_progress=seen.append) == target
    assert target.read_bytes() == PAYLOAD
    assert not part_path(target).exists()
    assert server.behaviour.ranges == [None]
    assert seen, "no progress reported"
    assert all(p.total == len(PAYLOAD) for p in seen)
    dones = [p.done for p in seen]
    assert dones == sorted(dones)
    assert seen[-1] == Progress(len(PAYLOAD), len(PAYLOAD))
    # ~10 calls a second plus the last: a local 5 MB copy is far below one call per chunk
    assert len(seen) <= len(PAYLOAD) // CHUNK_BYTES + 2


def test_dropped_connection_is_resumed_with_range(server: _Server, tmp_path: Path) -> None:
    server.behaviour.drop_after = 2_000_000
    target = tmp_path / "vgg16.h5"
    with pytest.raises(DownloadError) as info:
        fetch(url_of(server), target, md5=PAYLOAD_MD5, size=len(PAYLOAD))
    message = str(info.value)
    assert message.startswith("download interrupted"), message
    assert "kept" in message and "again" in message and "\n" not in message
    assert part_path(target).stat().st_size == 2_000_000
    assert not target.exists()

    seen: list[Progress] = []
    fetch(url_of(server), target, md5=PAYLOAD_MD5, size=len(PAYLOAD), on_progress=seen.append)
    assert server.behaviour.ranges == [None, "bytes=2000000-"]
    assert verify(target, PAYLOAD_MD5)
    assert not part_path(target).exists()
    assert seen[0].done > 2_000_000  # progress counts the resumed bytes too
    assert seen[-1] == Progress(len(PAYLOAD), len(PAYLOAD))


def test_server_ignoring_range_starts_over(server: _Server, tmp_path: Path) -> None:
    server.behaviour.ignore_range = True
    target = tmp_path / "vgg16.h5"
    part_path(target).write_bytes(b"stale bytes that must not survive" * 1000)
    fetch(url_of(server), target, md5=PAYLOAD_MD5)
    assert server.behaviour.ranges == ["bytes=33000-"]
    assert target.read_bytes() == PAYLOAD
    assert not part_path(target).exists()


def test_complete_part_answered_416_is_verified(server: _Server, tmp_path: Path) -> None:
    target = tmp_path / "vgg16.h5"
    part_path(target).write_bytes(PAYLOAD)
    fetch(url_of(server), target, md5=PAYLOAD_MD5)
    assert server.behaviour.ranges == [f"bytes={len(PAYLOAD)}-"]
    assert target.read_bytes() == PAYLOAD


def test_wrong_complete_part_answered_416_is_downloaded_again(
    server: _Server, tmp_path: Path
) -> None:
    target = tmp_path / "vgg16.h5"
    part_path(target).write_bytes(WRONG)
    fetch(url_of(server), target, md5=PAYLOAD_MD5)
    assert server.behaviour.ranges == [f"bytes={len(PAYLOAD)}-", None]
    assert target.read_bytes() == PAYLOAD


def test_complete_part_of_known_size_needs_no_network(server: _Server, tmp_path: Path) -> None:
    target = tmp_path / "vgg16.h5"
    part_path(target).write_bytes(PAYLOAD)
    fetch(url_of(server), target, md5=PAYLOAD_MD5, size=len(PAYLOAD))
    assert server.behaviour.requests == 0
    assert target.read_bytes() == PAYLOAD


def test_md5_mismatch_is_refused_and_part_removed(server: _Server, tmp_path: Path) -> None:
    server.behaviour.corrupt = True
    target = tmp_path / "vgg16.h5"
    with pytest.raises(DownloadError) as info:
        fetch(url_of(server), target, md5=PAYLOAD_MD5)
    message = str(info.value)
    assert PAYLOAD_MD5 in message
    assert hashlib.md5(WRONG).hexdigest() in message
    assert not part_path(target).exists()
    assert not target.exists()


def test_size_mismatch_is_refused_before_downloading(server: _Server, tmp_path: Path) -> None:
    target = tmp_path / "vgg16.h5"
    with pytest.raises(DownloadError, match=r"offers 5000000 bytes.*expected 123"):
        fetch(url_of(server), target, md5=PAYLOAD_MD5, size=123)
    assert not target.exists()


def test_connection_refused_says_no_network(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = tmp_path / "vgg16.h5"
    with pytest.raises(DownloadError) as info:
        fetch(f"http://127.0.0.1:{port}/vgg16.h5", target, md5=PAYLOAD_MD5, timeout_s=5)
    message = str(info.value)
    assert message.startswith("no network"), message
    assert "connection refused" in message and "\n" not in message
    assert not target.exists()
    assert not part_path(target).exists()


def test_silent_server_times_out_as_no_network(tmp_path: Path) -> None:
    target = tmp_path / "vgg16.h5"
    part_path(target).write_bytes(PAYLOAD[:1000])
    with socket.socket() as sock:  # listens but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        with pytest.raises(DownloadError) as info:
            fetch(f"http://127.0.0.1:{port}/w.h5", target, md5=PAYLOAD_MD5, timeout_s=0.3)
    message = str(info.value)
    assert message.startswith("no network"), message
    assert "kept" in message and "resumes" in message
    assert part_path(target).read_bytes() == PAYLOAD[:1000]
    assert not target.exists()


def test_stop_keeps_the_part_and_a_second_fetch_resumes(server: _Server, tmp_path: Path) -> None:
    target = tmp_path / "vgg16.h5"
    stop = threading.Event()
    with pytest.raises(DownloadError, match=r"^download stopped; run it again to resume$"):
        fetch(url_of(server), target, md5=PAYLOAD_MD5, stop=stop, on_progress=lambda _: stop.set())
    kept = part_path(target).stat().st_size
    assert 0 < kept < len(PAYLOAD)
    assert not target.exists()

    fetch(url_of(server), target, md5=PAYLOAD_MD5, stop=threading.Event())
    assert server.behaviour.ranges == [None, f"bytes={kept}-"]
    assert target.read_bytes() == PAYLOAD


def test_stop_already_set_sends_nothing(server: _Server, tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(DownloadError, match="download stopped"):
        fetch(url_of(server), tmp_path / "w.h5", md5=PAYLOAD_MD5, stop=stop)
    assert server.behaviour.requests == 0


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/w.h5", "127.0.0.1/w.h5", "http:///w.h5"]
)
def test_only_http_urls(url: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"only http:// and https://"):
        fetch(url, tmp_path / "w.h5", md5=PAYLOAD_MD5)
    assert list(tmp_path.iterdir()) == [tmp_path / "dropsight-home"]  # the conftest's home


def test_redirect_to_non_http_is_refused(server: _Server, tmp_path: Path) -> None:
    server.behaviour.redirect_to = "ftp://127.0.0.1/w.h5"
    with pytest.raises(DownloadError, match="non-http"):
        fetch(url_of(server), tmp_path / "w.h5", md5=PAYLOAD_MD5)
    assert not (tmp_path / "w.h5").exists()


def test_http_error_status_is_reported(server: _Server, tmp_path: Path) -> None:
    server.behaviour.status = 404
    with pytest.raises(
        DownloadError, match=r"^download failed: 127\.0\.0\.1:\d+ answered HTTP 404"
    ):
        fetch(url_of(server), tmp_path / "w.h5", md5=PAYLOAD_MD5)
    assert not (tmp_path / "w.h5").exists()


class _FullDisk:
    """A file that accepts `room` bytes, then fails like a full disk."""

    def __init__(self, f: Any, room: int) -> None:
        self._f = f
        self._room = room

    def write(self, data: Any) -> int:
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return int(self._f.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


def fill_disk_after(monkeypatch: pytest.MonkeyPatch, room: int) -> None:
    """Writes to any `.part` file fail with ENOSPC once `room` bytes are written."""
    real_open = Path.open

    def fake_open(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        f = real_open(self, mode, *args, **kwargs)
        if self.name.endswith(".part") and ("w" in mode or "a" in mode):
            return _FullDisk(f, room)
        return f

    monkeypatch.setattr(Path, "open", fake_open)


def test_disk_full_says_how_much_space_is_needed(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_disk_after(monkeypatch, CHUNK_BYTES)
    target = tmp_path / "models" / "vgg16.h5"
    with pytest.raises(DownloadError) as info:
        fetch(url_of(server), target, md5=PAYLOAD_MD5)
    message = str(info.value)
    assert message.startswith(f"not enough disk space in {target.parent} "), message
    assert "need 4 MB more" in message  # 5_000_000 - 1 MiB still to write
    assert not target.exists()
    assert part_path(target).stat().st_size == CHUNK_BYTES  # kept for a resume

    monkeypatch.undo()
    fetch(url_of(server), target, md5=PAYLOAD_MD5)  # space freed: resumes
    assert server.behaviour.ranges[-1] == f"bytes={CHUNK_BYTES}-"
    assert target.read_bytes() == PAYLOAD


def test_too_little_free_space_is_found_before_downloading(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Usage:
        free = 1_000_000

    monkeypatch.setattr(download.shutil, "disk_usage", lambda _: Usage())
    target = tmp_path / "vgg16.h5"
    with pytest.raises(DownloadError, match=r"^not enough disk space in .*: need 4 MB more"):
        fetch(url_of(server), target, md5=PAYLOAD_MD5)
    assert not target.exists()


def test_verify(tmp_path: Path) -> None:
    path = tmp_path / "w.h5"
    assert not verify(path, PAYLOAD_MD5)
    path.write_bytes(PAYLOAD)
    assert verify(path, PAYLOAD_MD5)
    assert verify(path, PAYLOAD_MD5.upper())
    assert not verify(path, hashlib.md5(b"other").hexdigest())
    assert not verify(tmp_path, PAYLOAD_MD5)


def test_import_file_copies_a_good_file(tmp_path: Path) -> None:
    source = tmp_path / "Downloads" / "vgg16.h5"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    target = tmp_path / "models" / "vgg16_weights.h5"
    assert import_file(source, target, md5=PAYLOAD_MD5) == target
    assert target.read_bytes() == PAYLOAD
    assert source.read_bytes() == PAYLOAD
    assert not part_path(target).exists()


def test_import_file_refuses_a_wrong_file(tmp_path: Path) -> None:
    source = tmp_path / "not-weights.h5"
    source.write_bytes(WRONG)
    target = tmp_path / "models" / "vgg16_weights.h5"
    with pytest.raises(DownloadError) as info:
        import_file(source, target, md5=PAYLOAD_MD5)
    message = str(info.value)
    assert message.startswith(f"{source} is not the vgg16_weights.h5 weights file: md5 ")
    assert f"expected {PAYLOAD_MD5}" in message
    assert not target.exists()
    assert not part_path(target).exists()


def test_import_file_missing_source(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="is not a file"):
        import_file(tmp_path / "nope.h5", tmp_path / "w.h5", md5=PAYLOAD_MD5)


def test_import_file_disk_full_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "vgg16.h5"
    source.write_bytes(PAYLOAD)
    fill_disk_after(monkeypatch, 2 * CHUNK_BYTES)
    target = tmp_path / "models" / "w.h5"
    with pytest.raises(DownloadError, match=r"^not enough disk space in .*: need 3 MB more") as e:
        import_file(source, target, md5=PAYLOAD_MD5)
    assert not target.exists()
    assert not part_path(target).exists()
    # Issue 20 item 13: it said "a partial .part file is kept to resume" while deleting it.
    assert "kept" not in str(e.value) and "nothing half-copied is left behind" in str(e.value)


def test_import_file_checks_a_known_size_before_copying(tmp_path: Path) -> None:
    """Issue 20 item 13: a 3 GB file was copied before the size it knew was checked."""
    source = tmp_path / "huge.h5"
    with source.open("wb") as f:  # sparse: 3 GB that cost no disk
        f.truncate(3 << 30)
    target = tmp_path / "models" / "w.h5"
    with pytest.raises(DownloadError, match=r"is not the w\.h5 weights file: 3221225472 bytes"):
        import_file(source, target, md5=PAYLOAD_MD5, size=len(PAYLOAD))
    assert not target.parent.exists()  # refused before anything was made


def test_import_file_checks_the_free_space_before_copying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "vgg16.h5"
    source.write_bytes(PAYLOAD)
    usage = download.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        download.shutil, "disk_usage", lambda _p: usage._replace(free=len(PAYLOAD) // 2)
    )
    target = tmp_path / "models" / "w.h5"
    with pytest.raises(DownloadError, match=r"not enough disk space.*nothing half-copied"):
        import_file(source, target, md5=PAYLOAD_MD5, size=len(PAYLOAD))
    assert not part_path(target).exists()
