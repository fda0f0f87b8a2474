"""What runs on the Ray nodes for `dropsight backfill --ray` (daemon/backfill/on_ray.py).

NodeBackfill is the actor: one per node, labelling batches with all the cores Ray gave it,
either by path with the service's own stages (`--ray-files shared`) or from bytes read on
the driver's node (`--ray-files driver`, read_files).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from dropsight.config.settings import Settings
from dropsight.daemon.backfill.local import Batch, backfill_outputs
from dropsight.daemon.models.store import ModelArtifact
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.outputs.protocol import Written
from dropsight.daemon.photos import imaging
from dropsight.daemon.photos.imaging import FileFacts, ImageError
from dropsight.daemon.pipeline.decode import Prepared, decode_read
from dropsight.daemon.pipeline.labelling import Rules, label
from dropsight.daemon.pipeline.wiring import job_factory
from dropsight.daemon.runtime import budget
from dropsight.daemon.runtime.classifier import Classifier, ModelInfo, open_artifact

WAIT_S = 0.02  # how often a call checks whether its photos are written

# What an actor returns per photo; `outcome`: labelled, current, odd, unreadable or not_written.
COLUMNS = ("path", "root", "sidecar", "record", "outcome", "node")


def read_files(
    batch: dict[str, np.ndarray], limits: imaging.PhotoLimits = imaging.DEFAULT_LIMITS
) -> dict[str, list[Any]]:
    """Read and hash photos on the driver's node (`--ray-files driver`); never raises."""
    out: dict[str, list[Any]] = {k: [] for k in ("path", "root", "data", "facts", "error")}
    for path, root in zip(batch["path"], batch["root"], strict=True):
        facts: FileFacts | None = None
        try:
            read = imaging.read_file(Path(os.fsdecode(path)), limits)
            data, facts, refused = read.data, read.facts, read.refused
            error = json.dumps([refused.kind, str(refused)]) if refused else ""
        except ImageError as exc:
            data, error = b"", json.dumps([exc.kind, str(exc)])
        out["path"].append(path)
        out["root"].append(root)
        out["data"].append(data)
        out["facts"].append(json.dumps(asdict(facts)) if facts else "")
        out["error"].append(error)
    return out


class _Results:
    """The stages' output in an actor: what the writer wrote, until a call returns it."""

    name = "ray-results"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._written: dict[Path, Written] = {}

    def configure(self, settings: Settings) -> None:
        """Nothing to configure: results go back to the driver."""

    def accept(self, batch: Sequence[Written]) -> None:
        """Keep what the writer wrote."""
        with self._lock:
            for written in batch:
                self._written[written.photo] = written

    def forget(self, photo: Path, root: Path) -> None:
        """A batch job forgets nothing."""

    def take(self, photos: Sequence[Path]) -> list[Written | None]:
        """Hand these photos' results over (None: vanished, nothing written)."""
        with self._lock:
            return [self._written.pop(photo, None) for photo in photos]

    def close(self) -> None:
        """Nothing held open."""


@dataclass(frozen=True)
class ShippedModel:
    """The driver's model file and what it is: used in place where a node sees the same
    file (path and size), else written from its bytes in Ray's object store."""

    path: Path
    size: int
    info: ModelInfo

    @classmethod
    def of(cls, artifact: ModelArtifact, info: ModelInfo) -> ShippedModel:
        """What the driver sends for `artifact`."""
        return cls(artifact.path, artifact.path.stat().st_size, info)


class NodeBackfill:
    """A Ray actor using all the cores Ray gave it: labels batches of photos.

    The runtime is chosen on the node itself (nodes may differ): the same timed, remembered
    choice as the service's, in the node's own cache folder.
    """

    def __init__(
        self,
        model: ShippedModel,
        model_ref: list[Any],
        settings: Settings,
        *,
        cpus: int,
        files: str = "shared",
    ) -> None:
        import ray

        info = model.info
        path = model.path
        self._copy: Path | None = None  # a model copy of our own, removed at the end
        if not (path.is_file() and path.stat().st_size == model.size):
            self._copy = Path(tempfile.mkdtemp(prefix="dropsight-ray-"))
            path = self._copy / f"{info.name}{model.path.suffix}"
            path.write_bytes(ray.get(model_ref[0]))
        artifact = ModelArtifact(info.name, info.fingerprint, path, info.input_size, "ray")
        settings = replace(settings, service=replace(settings.service, cores=cpus))
        classifier = open_artifact(artifact, info, settings)
        plan = budget.Request.of(settings).plan(info.gflops)
        self.node = ray.get_runtime_context().get_node_id()
        self._labeller: StagesLabeller | BytesLabeller = (
            StagesLabeller(settings, classifier)
            if files == "shared"
            else BytesLabeller(settings, classifier, plan.decoders)
        )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        return self._labeller(batch, self.node)

    def __del__(self) -> None:
        # Ray Data drops its reference when the pool shuts down gracefully: the one
        # shutdown path of the stages (no cycle holds this object, so it runs then).
        with contextlib.suppress(Exception):
            self._labeller.close()
        if self._copy is not None:
            shutil.rmtree(self._copy, ignore_errors=True)


class StagesLabeller:
    """Runs the service's stages on the node: reads, labels and writes photos by path."""

    def __init__(self, settings: Settings, classifier: Classifier) -> None:
        self._results = _Results()
        self._layout = sidecar.Layout.of(settings)
        self._fingerprint = classifier.info.fingerprint
        # The driver keeps the index and XMP: here the results only go back to it.
        outputs = backfill_outputs(extra=[self._results], entries=())
        self._stages = Batch(settings, classifier, outputs)
        self._stages.start()

    def __call__(self, batch: dict[str, np.ndarray], node: str) -> dict[str, list[Any]]:
        photos = [
            (Path(os.fsdecode(p)), Path(os.fsdecode(r)))
            for p, r in zip(batch["path"], batch["root"], strict=True)
        ]
        for photo, root in photos:
            self._stages.put(photo, root)
        waiting = [photo for photo, _ in photos]
        while waiting:  # until the writer has been through each (vanished ones too)
            time.sleep(WAIT_S)
            waiting = [photo for photo in waiting if self._stages.jobs.is_queued(photo)]
        out: dict[str, list[Any]] = {k: [] for k in COLUMNS}
        results = self._results.take([photo for photo, _ in photos])
        for (photo, root), written in zip(photos, results, strict=True):
            json_path = self._layout.sidecar_for(photo, root)
            out["path"].append(os.fsencode(photo))
            out["root"].append(os.fsencode(root))
            out["sidecar"].append(os.fsencode(json_path))
            out["record"].append(sidecar.dumps(written.record) if written else "")
            out["outcome"].append("labelled" if written else self._why_not(photo, json_path))
            out["node"].append(node)
        return out

    def _why_not(self, photo: Path, json_path: Path) -> str:
        """Why the stages wrote no sidecar for a photo."""
        if not os.path.lexists(photo):
            return "unreadable"  # gone, or this node does not see the library
        state = sidecar.scan_state(photo, json_path, self._fingerprint)
        if state == "current":
            return "current"  # labelled meanwhile (a retried batch after a lost node, say)
        if state == "odd":
            return "odd"  # another program's file holds the sidecar's place: left alone
        return "not_written"  # the writer logged why (disk full, permissions)

    def close(self) -> None:
        """Stop the stages (what was labelled is written)."""
        self._stages.close()


class BytesLabeller:
    """Labels photos whose bytes came from the driver's node; returns records, writes nothing."""

    def __init__(self, settings: Settings, classifier: Classifier, decoders: int) -> None:
        self._classifier = classifier
        self._layout = sidecar.Layout.of(settings)
        self._rules = Rules.of(settings)
        self._size, self._resize = classifier.info.input_size, settings.model.resize
        self._limits = imaging.PhotoLimits.of(settings)
        self._decoders = ThreadPoolExecutor(max(1, decoders), thread_name_prefix="decode")

    def __call__(self, batch: dict[str, np.ndarray], node: str) -> dict[str, list[Any]]:
        make_job = job_factory(self._layout)
        photos = [
            make_job(Path(os.fsdecode(p)), Path(os.fsdecode(r)))
            for p, r in zip(batch["path"], batch["root"], strict=True)
        ]

        def decode(i: int) -> Prepared:
            if batch["error"][i]:
                kind, message = json.loads(batch["error"][i])
                facts = json.loads(batch["facts"][i]) if batch["facts"][i] else None
                error = ImageError(kind, message)
                return Prepared(photos[i], FileFacts(**facts) if facts else None, error=error)
            facts = FileFacts(**json.loads(batch["facts"][i]))
            data = bytes(batch["data"][i])
            return decode_read(
                photos[i], data, facts, self._size, self._resize, limits=self._limits
            )

        items = list(self._decoders.map(decode, range(len(photos))))
        records = label(self._classifier, items, self._rules, self._layout.display_path)
        out: dict[str, list[Any]] = {k: [] for k in COLUMNS}
        for item, record in zip(items, records, strict=True):
            out["path"].append(os.fsencode(item.job.path))
            out["root"].append(os.fsencode(item.job.root))
            out["sidecar"].append(os.fsencode(item.job.sidecar))
            out["record"].append("" if item.vanished else sidecar.dumps(record))
            out["outcome"].append("unreadable" if item.vanished else "labelled")
            out["node"].append(node)
        return out

    def close(self) -> None:
        """Stop the decode threads."""
        self._decoders.shutdown(wait=True)
