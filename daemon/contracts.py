"""The wire formats other programs rely on: sidecar records, status, events, control-API routes,
answers and errors, exit codes.

Service, control API, client, tray and test fakes all import these types, so the formats
cannot drift apart; `tests/daemon/test_contracts.py` checks the sidecar JSON Schema against
them. Fields are only ever added.
"""

# No `from __future__ import annotations`: TypedDict needs real annotations to tell
# NotRequired fields (__required_keys__) apart.
from enum import IntEnum
from typing import Literal, NotRequired, TypedDict

# --- sidecar (config/sidecar.schema.json) ----------------------------------------------------


class FileStat(TypedDict):
    """The photo file's identity when it was read (added in 0.3)."""

    mtime_ns: int
    ctime_ns: int  # status change time (creation time on Windows)
    inode: int  # the file index on Windows


class ImageBlock(TypedDict):
    """What the sidecar records about the photo file."""

    # The photo's name beside the sidecar, else its absolute path. File-system bytes that are
    # not UTF-8 are kept as lone surrogates U+DC80-U+DCFF (Python's "surrogateescape"),
    # written as \udcXX escapes: `os.fsencode(path)` gives the original bytes back.
    path: str
    sha256: str | None
    bytes: int | None
    width: int | None
    height: int | None
    # Scans treat the sidecar as current only while the photo's size and all of these are
    # unchanged; otherwise the photo is read and hashed again.
    stat: NotRequired[FileStat]


class ModelBlock(TypedDict):
    """Which model produced the labels."""

    name: str
    fingerprint: str
    input_size: list[int]
    runtime: str  # "litert-fp32", "openvino-bf16" (before 0.4: "litert"); not in the fingerprint
    fallback_for: NotRequired[str | None]


class Prediction(TypedDict):
    """One of the top-k classes, best first."""

    rank: int
    class_index: int
    wnid: str
    label: str  # the raw ImageNet label: "golden_retriever"
    name: NotRequired[str]  # friendly: "golden retriever" (added in 0.2; absent in older files)
    score: float


class ErrorBlock(TypedDict):
    """Why a photo has no labels."""

    type: str
    message: str


class GeneratorBlock(TypedDict):
    """The program that wrote the sidecar."""

    name: str
    version: str


class SidecarRecord(TypedDict):
    """One photo's sidecar, schema version 1."""

    schema_version: int
    status: Literal["ok", "error"]
    image: ImageBlock
    model: ModelBlock
    predictions: list[Prediction]
    error: ErrorBlock | None
    processed_at: str
    generator: GeneratorBlock
    # Categories ("animal", "dog") of labels scoring at least output.xmp_min_score; ok
    # records only (added in 0.2; absent in older files).
    categories: NotRequired[list[str]]


# Error types of photos that cannot be labelled. The content kinds describe the file itself:
# the same bytes fail the same way, so their sidecar stays current. The others can pass
# (a locked file, a model hiccup) and are tried again at the next scan.
# "crashed": labelling it ended the service twice (daemon/pipeline/crashguard.py).
CONTENT_ERRORS = frozenset(
    {"empty_file", "not_an_image", "truncated", "corrupt", "too_large", "crashed"}
)

# --- status (GET /v1/status) -----------------------------------------------------------------

ServiceState = Literal["starting", "idle", "working", "paused", "error", "stopping"]


class Progress(TypedDict):
    """The current burst: "12 of 340"."""

    done: int
    total: int


class ErrorEntry(TypedDict):
    """A recent problem, newest first in `Status.errors`."""

    time: str
    path: str | None
    message: str


class RecentResult(TypedDict):
    """A recently written sidecar, newest first in `Status.recent`."""

    image: str
    sidecar: str
    status: str
    label: str | None  # friendly name of the top label ("golden retriever")
    score: float | None
    time: str


class FolderStatus(TypedDict):
    """One watched folder."""

    path: str
    healthy: bool
    error: str | None
    observer: str


class MissingModel(TypedDict):
    """The configured model whose weights are absent (a calm state: the fallback runs)."""

    name: str
    download_bytes: int


class ModelFetchStatus(TypedDict):
    """A model download/conversion the service runs in the background."""

    name: str
    stage: Literal["downloading", "verifying", "converting", "ready", "failed"]
    done_bytes: int
    total_bytes: int
    rate_bps: float
    eta_s: float | None
    elapsed_s: float
    error: str | None


class ModelStatus(TypedDict):
    """The model the service runs, and why."""

    name: str
    requested: str
    fallback: bool
    fallback_reason: str | None
    runtime: str | None  # as in sidecars: "openvino-fp32"
    # For people: "vgg16 on OpenVINO (fp32), 9 img/s" (the speed measured when chosen).
    runtime_summary: NotRequired[str | None]
    fingerprint: str | None
    error: str | None
    missing: NotRequired[MissingModel | None]
    fetch: NotRequired[ModelFetchStatus | None]


class RelabelStatus(TypedDict):
    """Photos labelled by another model, waiting to be labelled by the current one."""

    model: str
    pending: int


class OutputStatus(TypedDict):
    """Which files the service writes besides the JSON sidecars."""

    xmp: Literal["off", "beside"]
    xmp_name: str  # "IMG.jpg.xmp" or "IMG.xmp"


class PipelineStatus(TypedDict):
    """How the cores are shared (see daemon/runtime/budget.py)."""

    decoders: int
    lanes: int
    threads_per_lane: int
    batch_size: int


class Status(TypedDict):
    """A snapshot of what the service is doing."""

    state: ServiceState
    done: int
    failed: int
    skipped: int
    queued: int
    progress: Progress
    current: str | None
    errors: list[ErrorEntry]
    recent: list[RecentResult]
    model: ModelStatus
    folders: list[FolderStatus]
    version: str
    pid: int
    config_path: str
    log_path: str
    pipeline: NotRequired[PipelineStatus]
    relabel: NotRequired[RelabelStatus | None]
    output: NotRequired[OutputStatus]
    # Photos skipped because their sidecar's place holds a file Dropsight did not write (or
    # not a valid sidecar): left as it is, never overwritten (added in 0.3).
    odd_files: NotRequired[int]


# What clients show when no service answers (`dropsight status --json`, exit 3).
NOT_RUNNING_STATE = "not-running"

# --- result events (GET /v1/events, `dropsight events --json`, hooks) ------------------------


class ResultEvent(TypedDict):
    """One labelled photo, as it happens (a small, stable subset of its sidecar record)."""

    type: Literal["result"]
    photo: str
    sidecar: str
    status: Literal["ok", "error"]
    name: str | None  # the top label's display name (daemon/labels/names.py)
    class_index: int | None
    score: float | None
    categories: list[str]
    model: str
    processed_at: str
    error: str | None  # why there are no labels


# --- control API -----------------------------------------------------------------------------


class ControlInfo(TypedDict):
    """control.json in the state folder: where the running service listens (mode 0600)."""

    port: int
    token: str  # the bearer token every request must carry
    pid: int
    version: str


API_PREFIX = "/v1/"
Route = Literal[
    "ping",
    "status",
    "pause",
    "resume",
    "rescan",
    "stop",
    "classify",
    "relabel",
    "reload",
    "models/reload",
    "models/get",
    "events",
]
Method = Literal["GET", "POST"]
# Route (the path after /v1/) -> the HTTP method it takes: the one table the server routes by
# and the client sends by.
ROUTES: dict[Route, Method] = {
    "ping": "GET",  # proof of life that asks the service nothing (added in 0.3)
    "status": "GET",
    "pause": "POST",
    "resume": "POST",
    "rescan": "POST",
    "stop": "POST",
    "classify": "POST",
    "relabel": "POST",  # label photos done by another model again, now
    "reload": "POST",  # read the config file again
    "models/reload": "POST",  # look for the configured model again (weights just arrived)
    "models/get": "POST",  # {"name": "vgg16"}: download its weights, then switch to it
    "events": "GET",  # Server-Sent Events: `result` per labelled photo (daemon/outputs/events.py)
}

ErrorCode = Literal[
    "unauthorized",  # 401: no bearer token
    "forbidden",  # 403: wrong token
    "forbidden_host",  # 403: Host header not a loopback address (DNS rebinding)
    "not_found",  # 404: no such route
    "method_not_allowed",  # 405
    "length_required",  # 411: chunked body
    "too_large",  # 413, or 431 for a request head over 16 KiB
    "bad_request",  # 400: malformed request
    "bad_json",  # 400: body is not UTF-8 JSON
    "bad_path",  # 400: classify path not absolute or not classifiable
    "file_not_found",  # 404: classify path does not exist
    "unavailable",  # 503: e.g. the model is still loading
    # 503: too many connections or event streams just now (the body also has "state":
    # "busy"); the service runs: never "not running" (added in 0.3)
    "busy",
    "request_timeout",  # 408: the request did not arrive in time (added in 0.3)
    "internal_error",  # 500: a handler failed (logged); the server keeps running
    "http_error",  # protocol-level error from the HTTP parser
    "timeout",  # client side: no answer in time
]


class ApiErrorDetail(TypedDict):
    """The body of every non-200 answer: {"error": {"code": ..., "message": ...}}."""

    code: ErrorCode
    message: str


class ApiErrorBody(TypedDict):
    """An error answer."""

    error: ApiErrorDetail


class OkAnswer(TypedDict):
    """The answer of every action route."""

    ok: bool


class PingAnswer(TypedDict):
    """GET /v1/ping: the service answers and the token is right (added in 0.3)."""

    ok: bool
    pid: int
    version: str


# --- exit codes (`dropsight ...`; the systemd unit and scripts act on them) -------------------


class ExitCode(IntEnum):
    """What a `dropsight` command's exit status means."""

    OK = 0
    FAILED = 1  # some photos or an operation failed; `service`: another instance runs
    USAGE = 2  # bad arguments or config; `service`: nothing to watch
    NOT_RUNNING = 3  # a control command found no service
    BUSY = 4  # `backfill` refused: a running service labels the same folders
    SERVICE_BUSY = 5  # a control command: the service runs but has no slot free; try again
    # sysexits' EX_SOFTWARE: `service` failed inside. Not 1 or 2, which the systemd unit never
    # restarts (RestartPreventExitStatus).
    INTERNAL = 70
    INTERRUPTED = 130  # Ctrl+C (128 + SIGINT)
    # The reader of stdout went away (`dropsight search dog | head -1`): 128 + SIGPIPE, what a
    # shell reports for grep or cat in the same place (`set -o pipefail` sees it).
    READER_GONE = 141
