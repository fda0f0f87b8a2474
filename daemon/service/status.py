"""The service's status snapshot: what the API, the tray and `dropsight status` show."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dropsight.daemon import __version__
from dropsight.daemon.contracts import RelabelStatus, ServiceState, Status
from dropsight.daemon.core import logs, paths

if TYPE_CHECKING:
    from dropsight.daemon.service.service import Service


def snapshot(service: Service) -> Status:
    """A JSON-ready snapshot of what `service` is doing."""
    queue, a, engine = service.queue, service.activity, service.engine
    pending = queue.pending() + queue.in_flight() + service.settler.pending_count()
    classifier = engine.classifier
    state: ServiceState
    if service.stopping:
        state = "stopping"
    elif classifier is None:
        state = "error" if engine.error else "starting"
    elif service.paused:
        state = "paused"
    else:
        state = "working" if pending else "idle"
    relabel: RelabelStatus | None = None
    other = service.scanner.other_model
    if classifier is not None and not service.relabel_requested and other:
        relabel = {"model": classifier.info.name, "pending": other}
    settings = service.settings
    status: Status = {
        "state": state,
        "done": a.done,
        "failed": a.failed,
        "skipped": a.skipped,
        "queued": pending,
        "progress": {"done": a.burst_done, "total": a.burst_done + pending},
        "current": a.current if pending else None,
        "errors": a.errors(),
        "recent": a.recent(),
        "model": engine.status(),
        "folders": service.folders.statuses(a),
        "version": __version__,
        "pid": os.getpid(),
        "config_path": str(settings.source or paths.config_file()),
        "log_path": str(logs.log_file()),
        "relabel": relabel,
        "odd_files": a.odd_files(),
        "output": {
            "xmp": "beside" if settings.output.xmp == "beside" else "off",
            "xmp_name": settings.output.xmp_name,
        },
    }
    pipeline = engine.pipeline_status()
    if pipeline is not None:
        status["pipeline"] = pipeline
    return status
