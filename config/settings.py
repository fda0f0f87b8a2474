"""Typed settings, loaded once from a TOML file and validated with exact error messages."""

from __future__ import annotations

import string
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

DEFAULT_TOML = Path(__file__).with_name("default.toml")

ModelName = Literal["vgg16", "efficientnet-lite0"]
Observer = Literal["auto", "native", "polling"]
Resize = Literal["crop", "squash"]  # crop the centre square, or squash the whole photo
OutputMode = Literal["beside", "folder"]
XmpMode = Literal["off", "beside"]
XmpName = Literal["IMG.jpg.xmp", "IMG.xmp"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
RelabelPolicy = Literal["on-change", "on-demand"]
RuntimeMode = Literal["auto", "litert", "openvino"]  # which runtime runs the model
DeviceMode = Literal["auto", "cpu", "gpu", "npu"]  # where OpenVINO runs it

MODEL_NAMES: tuple[ModelName, ...] = get_args(ModelName)
OBSERVERS: tuple[Observer, ...] = get_args(Observer)
RESIZE_POLICIES: tuple[Resize, ...] = get_args(Resize)
OUTPUT_MODES: tuple[OutputMode, ...] = get_args(OutputMode)
XMP_MODES: tuple[XmpMode, ...] = get_args(XmpMode)
XMP_NAMES: tuple[XmpName, ...] = get_args(XmpName)
LOG_LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)
RELABEL_POLICIES: tuple[RelabelPolicy, ...] = get_args(RelabelPolicy)
RUNTIME_MODES: tuple[RuntimeMode, ...] = get_args(RuntimeMode)
DEVICE_MODES: tuple[DeviceMode, ...] = get_args(DeviceMode)
FALLBACKS: tuple[ModelName | Literal[""], ...] = (*MODEL_NAMES, "")

C = TypeVar("C", bound=str)


class ConfigError(ValueError):
    """A config value is invalid; the message names the file, the key and what is allowed."""


@dataclass(frozen=True)
class WatchSettings:
    """Which folders and files are watched."""

    folders: tuple[Path, ...] = ()
    recursive: bool = True
    extensions: frozenset[str] = frozenset(
        {"jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "heic", "heif"}
        # camera RAW (daemon/photos/raw.py)
        | {"dng", "cr2", "cr3", "nef", "arw", "raf", "orf", "rw2", "pef", "srw"}
    )
    ignore: tuple[str, ...] = (
        ".*",
        "@eaDir",
        "#recycle",
        "#snapshot",
        "*.part",
        "*.crdownload",
        "*.download",
        "*.tmp",
        "~$*",
        "Thumbs.db",
        "desktop.ini",
    )
    observer: Observer = "auto"
    rescan_interval_s: float = 600.0
    settle_time_s: float = 2.0


@dataclass(frozen=True)
class ModelSettings:
    """Which classifier runs and how its output is trimmed."""

    name: ModelName = "vgg16"
    fallback: ModelName | Literal[""] = "efficientnet-lite0"  # "": none
    weights: Path | None = None
    allow_download: bool = False
    top_k: int = 5
    min_score: float = 0.0
    resize: Resize = "crop"
    batch_size: int = 16
    relabel: RelabelPolicy = (
        "on-change"  # photos labelled by another model: again at once, or on request
    )
    runtime: RuntimeMode = "auto"  # auto: the faster of LiteRT and OpenVINO here, timed once
    device: DeviceMode = "auto"  # auto: an Intel GPU or NPU only when present and faster


@dataclass(frozen=True)
class OutputSettings:
    """Where sidecars go."""

    mode: OutputMode = "beside"
    folder: Path | None = None
    xmp: XmpMode = "off"  # "beside": keywords in XMP sidecars photo tools read
    xmp_name: XmpName = "IMG.jpg.xmp"  # or "IMG.xmp" (Adobe tools)
    xmp_min_score: float = 0.3  # keywords (and sidecar categories) from labels this sure


@dataclass(frozen=True)
class ServiceSettings:
    """Process-level knobs."""

    log_level: LogLevel = "INFO"
    decode_threads: int = 0  # 0: automatic (daemon/runtime/budget.py)
    cores: int = 0  # CPU cores labelling may use; 0: all of them
    max_file_mb: int = 256  # bigger files are refused unread (hashed as a stream)
    max_decode_megapixels: float = 100.0  # pixels decoded at once (JPEGs decode reduced)


# What `[hooks] on_result` arguments may name: {photo}, {name}... (daemon/outputs/hooks.py).
HOOK_PLACEHOLDERS = ("photo", "sidecar", "status", "name", "score", "model")
# Extensions that are Dropsight's own files, never photos: labelling one would write
# `x.jpg.json.json`, then `x.jpg.json.json.json`... (daemon/core/atomic.py: TEMP_SUFFIX).
NOT_PHOTO_EXTENSIONS = frozenset({"json", "xmp", "dropsight-tmp"})


@dataclass(frozen=True)
class HookSettings:
    """Programs run for each result."""

    on_result: tuple[str, ...] = ()  # an argument list: ["notify-send", "{name}", "{photo}"]
    timeout_s: float = 30.0


@dataclass(frozen=True)
class Settings:
    """All settings; `source` is the file they came from (None: built-in defaults)."""

    watch: WatchSettings = field(default_factory=WatchSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    hooks: HookSettings = field(default_factory=HookSettings)
    source: Path | None = None

    def with_overrides(
        self,
        *,
        watch: Sequence[Path] = (),
        model: str | None = None,
        xmp: bool = False,
    ) -> Settings:
        """Return a copy with command-line overrides applied."""
        out = self
        if watch:
            folders = tuple(dict.fromkeys([*self.watch.folders, *(expand(p) for p in watch)]))
            out = replace(out, watch=replace(out.watch, folders=folders))
        if model is not None:
            where = str(self.source or "<command line>")
            name = _check_choice(where, "model.name", model, MODEL_NAMES)
            out = replace(out, model=replace(out.model, name=name))
        if xmp:
            out = replace(out, output=replace(out.output, xmp="beside"))
        return out


def expand(p: str | Path) -> Path:
    """A configured path as used: "~" expanded, made absolute."""
    return Path(p).expanduser().absolute()


def _check_choice(where: str, key: str, value: object, allowed: Sequence[C]) -> C:
    chosen = _one_of(value, allowed)
    if chosen is None:
        raise ConfigError(
            f"{where}: {key} = {value!r} is not allowed; use one of: "
            + ", ".join(repr(a) for a in allowed)
        )
    return chosen


def _one_of(value: object, allowed: Sequence[C]) -> C | None:
    """`value` as the member of `allowed` it equals, or None."""
    return next((a for a in allowed if a == value), None)


class _Reader:
    """Reads one TOML table, checking types and ranges, and rejects unknown keys."""

    def __init__(self, where: str, section: str, table: Any) -> None:
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{section}] must be a table, got {type(table).__name__}")
        self.where = where
        self.section = section
        self.table: dict[str, Any] = dict(table)
        self.seen: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.section}.{key}"

    def _fail(self, key: str, value: Any, allowed: str) -> ConfigError:
        return ConfigError(f"{self.where}: {self._key(key)} = {value!r} is invalid; {allowed}")

    def get(self, key: str, default: Any, check: Callable[[Any], Any], allowed: str) -> Any:
        self.seen.add(key)
        if key not in self.table:
            return default
        value = self.table[key]
        try:
            return check(value)
        except (TypeError, ValueError):
            raise self._fail(key, value, allowed) from None

    def boolean(self, key: str, default: bool) -> bool:
        def check(v: Any) -> bool:
            if not isinstance(v, bool):
                raise TypeError
            return v

        return bool(self.get(key, default, check, "expected true or false"))

    def number(self, key: str, default: float, lo: float, hi: float, *, integer: bool) -> Any:
        kind = "an integer" if integer else "a number"

        def check(v: Any) -> float:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise TypeError
            if integer and not isinstance(v, int):
                raise TypeError
            if not lo <= v <= hi:
                raise ValueError
            return v

        return self.get(key, default, check, f"expected {kind} from {lo:g} to {hi:g}")

    def choice(self, key: str, default: C, allowed: Sequence[C]) -> C:
        def check(v: Any) -> C:
            chosen = _one_of(v, allowed)
            if chosen is None:
                raise ValueError
            return chosen

        chosen: C = self.get(
            key, default, check, "use one of: " + ", ".join(repr(a) for a in allowed)
        )
        return chosen

    def strings(self, key: str, default: Sequence[str]) -> tuple[str, ...]:
        def check(v: Any) -> tuple[str, ...]:
            if not isinstance(v, list) or not all(isinstance(s, str) and s for s in v):
                raise TypeError
            return tuple(v)

        return tuple(self.get(key, default, check, "expected a list of non-empty strings"))

    def path(self, key: str) -> Path | None:
        def check(v: Any) -> Path | None:
            if not isinstance(v, str):
                raise TypeError
            return expand(v) if v else None

        result: Path | None = self.get(key, None, check, 'expected a path string ("" for none)')
        return result

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.seen)
        if unknown:
            raise ConfigError(
                f"{self.where}: unknown key {self._key(unknown[0])!r}; "
                f"[{self.section}] accepts: " + ", ".join(sorted(self.seen))
            )


def parse(data: dict[str, Any], where: str) -> Settings:
    """Build validated Settings from a parsed TOML document."""
    sections = {"watch", "model", "output", "service", "hooks"}
    for name in data:
        if name not in sections:
            raise ConfigError(
                f"{where}: unknown section [{name}]; allowed: " + ", ".join(sorted(sections))
            )
    return Settings(
        watch=_watch(_Reader(where, "watch", data.get("watch", {}))),
        model=_model(_Reader(where, "model", data.get("model", {}))),
        output=_output(_Reader(where, "output", data.get("output", {}))),
        service=_service(_Reader(where, "service", data.get("service", {}))),
        hooks=_hooks(_Reader(where, "hooks", data.get("hooks", {}))),
    )


def _watch(r: _Reader) -> WatchSettings:
    d = WatchSettings()
    folders = tuple(expand(s) for s in r.strings("folders", ()))
    exts = r.strings("extensions", sorted(d.extensions))
    ours = sorted({e.lower().lstrip(".") for e in exts} & NOT_PHOTO_EXTENSIONS)
    if ours:
        raise r._fail(
            "extensions",
            list(exts),
            f"{ours[0]!r} names Dropsight's own files, not photos; remove it"
            f" (never allowed: {', '.join(sorted(NOT_PHOTO_EXTENSIONS))})",
        )
    watch = WatchSettings(
        folders=folders,
        recursive=r.boolean("recursive", d.recursive),
        extensions=frozenset(e.lower().lstrip(".") for e in exts),
        ignore=r.strings("ignore", d.ignore),
        observer=r.choice("observer", d.observer, OBSERVERS),
        rescan_interval_s=float(
            r.number("rescan_interval_s", d.rescan_interval_s, 0, 86400, integer=False)
        ),
        settle_time_s=float(r.number("settle_time_s", d.settle_time_s, 0, 3600, integer=False)),
    )
    r.done()
    return watch


def _model(r: _Reader) -> ModelSettings:
    d = ModelSettings()
    name = r.choice("name", d.name, MODEL_NAMES)
    fallback = r.choice("fallback", d.fallback, FALLBACKS)
    model = ModelSettings(
        name=name,
        fallback=fallback,
        weights=r.path("weights"),
        allow_download=r.boolean("allow_download", d.allow_download),
        top_k=int(r.number("top_k", d.top_k, 1, 1000, integer=True)),
        min_score=float(r.number("min_score", d.min_score, 0, 1, integer=False)),
        resize=r.choice("resize", d.resize, RESIZE_POLICIES),
        batch_size=int(r.number("batch_size", d.batch_size, 1, 256, integer=True)),
        relabel=r.choice("relabel", d.relabel, RELABEL_POLICIES),
        runtime=r.choice("runtime", d.runtime, RUNTIME_MODES),
        device=r.choice("device", d.device, DEVICE_MODES),
    )
    r.done()
    return model


def _output(r: _Reader) -> OutputSettings:
    d = OutputSettings()
    mode = r.choice("mode", d.mode, OUTPUT_MODES)
    out_folder = r.path("folder")
    output = OutputSettings(
        mode=mode,
        folder=out_folder,
        xmp=r.choice("xmp", d.xmp, XMP_MODES),
        xmp_name=r.choice("xmp_name", d.xmp_name, XMP_NAMES),
        xmp_min_score=float(r.number("xmp_min_score", d.xmp_min_score, 0, 1, integer=False)),
    )
    r.done()
    if mode == "folder" and out_folder is None:
        raise ConfigError(f'{r.where}: output.folder must be set when output.mode = "folder"')
    return output


def _service(r: _Reader) -> ServiceSettings:
    d = ServiceSettings()
    level: LogLevel = r.get(
        "log_level",
        d.log_level,
        lambda v: _upper_choice(v, LOG_LEVELS),
        "use one of: " + ", ".join(LOG_LEVELS),
    )
    service = ServiceSettings(
        log_level=level,
        decode_threads=int(r.number("decode_threads", d.decode_threads, 0, 16, integer=True)),
        cores=int(r.number("cores", d.cores, 0, 256, integer=True)),
        max_file_mb=int(r.number("max_file_mb", d.max_file_mb, 1, 65536, integer=True)),
        max_decode_megapixels=float(
            # Pillow's own decompression-bomb guard refuses more than 178.9 MP regardless.
            r.number("max_decode_megapixels", d.max_decode_megapixels, 1, 178, integer=False)
        ),
    )
    r.done()
    return service


def _hooks(r: _Reader) -> HookSettings:
    d = HookSettings()
    on_result = r.strings("on_result", d.on_result)
    for arg in on_result:
        problem = _placeholder_problem(arg)
        if problem:
            raise r._fail(
                "on_result",
                arg,
                f"{problem}; known placeholders: "
                + ", ".join(f"{{{p}}}" for p in HOOK_PLACEHOLDERS)
                + "; write a literal brace as {{ or }} (awk '{{print $1}}')",
            )
    hooks = HookSettings(
        on_result=on_result,
        timeout_s=float(r.number("timeout_s", d.timeout_s, 1, 3600, integer=False)),
    )
    r.done()
    return hooks


def _placeholder_problem(arg: str) -> str | None:
    """Why a hook argument cannot be filled in (`str.format_map`), or None."""
    try:
        parts = [(f, spec, conv) for _t, f, spec, conv in string.Formatter().parse(arg)]
    except ValueError as exc:  # a lone { or }
        return str(exc)
    for name, spec, conv in parts:
        if name is None:
            continue
        if name not in HOOK_PLACEHOLDERS:
            return f"unknown placeholder {{{name}}}"
        if spec or conv:
            return f"{{{name}}} takes no format spec or conversion"
    return None


def _upper_choice(v: Any, allowed: Sequence[C]) -> C:
    chosen = _one_of(v.upper(), allowed) if isinstance(v, str) else None
    if chosen is None:
        raise ValueError
    return chosen


def load(path: Path | None) -> Settings:
    """Load settings from `path`; a missing file means built-in defaults."""
    if path is None or not path.exists():
        return Settings(source=None)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return replace(parse(data, str(path)), source=path)
