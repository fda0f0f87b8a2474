"""Time the frozen service: from starting it to its first sidecar, and from a drop to its sidecar.

    python packaging/time_to_sidecar.py [--bundle dist/dropsight] [--runs 3] [--photo FILE]
                                        [--fresh]

Each run starts `<bundle>/dropsight service --watch TMP --model efficientnet-lite0` with one
photo already waiting in TMP, found by the start-up scan (its mtime is an hour old, as for
photos that arrived while the service was down; with --fresh it was just written, and the
service waits its 2 s settle time). It waits for that sidecar, drops a second photo in (temp
name, then rename), waits for that sidecar, and stops the service (SIGTERM; `dropsight stop`
on Windows). All app folders go to a temp DROPSIGHT_HOME. Prints one line per run and the
medians. The photo defaults to scikit-image's `chelsea` sample (a cat).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _photo(folder: Path, given: Path | None) -> Path:
    if given is not None:
        return given
    from PIL import Image
    from skimage import data

    path = folder / "chelsea.jpg"
    Image.fromarray(data.chelsea()).save(path, quality=92)
    return path


def _wait(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> float:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.is_file():
            return time.monotonic()
        if proc.poll() is not None:
            raise SystemExit(f"the service exited ({proc.returncode}) before writing {path.name}")
        time.sleep(0.01)
    raise SystemExit(f"no sidecar {path} after {timeout:.0f} s")


def one_run(exe: Path, photo: Path, work: Path, old: bool) -> tuple[float, float]:
    """(start -> first sidecar, drop -> sidecar) in seconds."""
    watch = work / "watch"
    watch.mkdir(parents=True)
    waiting = watch / "waiting.jpg"
    shutil.copyfile(photo, waiting)
    if old:  # there since before the start, as after a reboot (no settle wait for it)
        past = time.time() - 3600
        os.utime(waiting, (past, past))
    env = {**os.environ, "DROPSIGHT_HOME": str(work / "home")}
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(exe), "service", "--watch", str(watch), "--model", "efficientnet-lite0"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        first = _wait(watch / "waiting.jpg.json", proc, 120) - started
        tmp = watch / ".dropped.jpg.part"
        shutil.copyfile(photo, tmp)
        dropped = time.monotonic()
        tmp.rename(watch / "dropped.jpg")
        latency = _wait(watch / "dropped.jpg.json", proc, 60) - dropped
        if sys.platform == "win32":  # SIGTERM there is TerminateProcess: ask it to stop instead
            subprocess.run([str(exe), "stop"], env=env, timeout=60, check=False)
        else:
            proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        if rc != 0:
            raise SystemExit(f"the service exited {rc} when asked to stop")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return first, latency


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", type=Path, default=ROOT / "dist" / "dropsight")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--photo", type=Path)
    p.add_argument(
        "--fresh",
        action="store_true",
        help="the waiting photo was just written (the service then waits settle_time_s, 2 s)",
    )
    args = p.parse_args(argv)
    exe = args.bundle / ("dropsight.exe" if sys.platform == "win32" else "dropsight")
    if not exe.is_file():
        print(f"time_to_sidecar: no frozen app at {exe}; run `make dist` first", file=sys.stderr)
        return 1
    firsts, latencies = [], []
    with tempfile.TemporaryDirectory(prefix="dropsight-timing-") as tmp:
        photo = _photo(Path(tmp), args.photo)
        for i in range(args.runs):
            first, latency = one_run(exe, photo, Path(tmp) / f"run{i}", not args.fresh)
            firsts.append(first)
            latencies.append(latency)
            print(f"run {i + 1}: start -> first sidecar {first:.2f} s; ", end="")
            print(f"drop -> sidecar {latency:.3f} s")
    print(
        f"median of {args.runs}: start -> first sidecar {statistics.median(firsts):.2f} s; "
        f"drop -> sidecar {statistics.median(latencies):.3f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
