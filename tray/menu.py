"""The tray menu as plain data built from a status snapshot; each backend renders it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dropsight.daemon.contracts import ModelStatus, RecentResult, Status
from dropsight.daemon.core import paths
from dropsight.daemon.labels.names import friendly
from dropsight.tray import desktop
from dropsight.tray.icons import (
    BUSY_STAGES,
    fetch_text,
    is_fallback,
    model_of,
    model_title,
    summary,
    tooltip_for,
    visual_state,
)
from dropsight.tray.units import human_size

RECENT_MENU_ITEMS = 10
MENU_TEXT_MAX_CHARS = 300
SEPARATOR_LABEL = "-"


@dataclass(frozen=True)
class MenuItem:
    """One entry: a label, whether it can be clicked, what it does, an optional check mark."""

    label: str
    enabled: bool = True
    action: Callable[[], None] | None = field(default=None, compare=False)
    checked: bool | None = None
    default: bool = False  # the action of a click on the icon itself
    submenu: tuple[MenuItem, ...] = ()

    @property
    def is_separator(self) -> bool:
        """Whether this entry is a separator line."""
        return self.label == SEPARATOR_LABEL


SEPARATOR = MenuItem(SEPARATOR_LABEL, enabled=False)


class Commands(Protocol):
    """The part of the service client the menu drives."""

    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def rescan(self) -> None: ...
    def get_model(self, name: str) -> None: ...
    def relabel(self) -> None: ...


class Host(Protocol):
    """What the tray application does for menu entries that are not service commands."""

    def open_path(self, path: Path) -> None: ...
    def open_viewer(self, *args: str) -> None: ...
    def start_service(self) -> None: ...
    def set_autostart(self, enabled: bool) -> None: ...
    def set_xmp(self, enabled: bool) -> None: ...
    def quit(self) -> None: ...


def build_menu(
    status: Status | None,
    client: Commands | None,
    host: Host,
    autostart_enabled: bool,
    can_start_service: bool = False,
) -> list[MenuItem]:
    """The menu for this status; `client` is None while no service answers."""
    connected = client is not None and status is not None
    return [
        *_status_items(status, client, connected),
        MenuItem("Open viewer", action=host.open_viewer, default=True),
        _pause_item(status, client, connected),
        SEPARATOR,
        *_folder_items(status, host, client, connected),
        SEPARATOR,
        *_setting_items(status, host, autostart_enabled),
        SEPARATOR,
        *_end_items(host, can_start_service and not connected),
    ]


def _status_items(
    status: Status | None, client: Commands | None, connected: bool
) -> list[MenuItem]:
    """What the service is doing, which model it uses and what it offers to do about it."""
    items = [MenuItem(tooltip_for(status), enabled=False)]
    full = f"Dropsight: {summary(status)}"
    if visual_state(status) == "error" and len(full) > len(items[0].label):  # a cut tooltip
        items.append(MenuItem(full[:MENU_TEXT_MAX_CHARS], enabled=False))
    model = model_of(status)
    if model and is_fallback(status):
        items.append(MenuItem(fallback_text(model), enabled=False))
    if model:
        items += _model_items(model, client if connected else None)
    relabel = status.get("relabel") if status else None
    if relabel and relabel.get("pending"):
        items.append(
            MenuItem(
                f"Re-label {int(relabel['pending']):,} photos with {model_title(relabel['model'])}",
                enabled=connected,
                action=_call(client, "relabel"),
            )
        )
    return items


def fallback_text(model: ModelStatus) -> str:
    """Why another model labels: its weights are being fetched, or it could not be loaded."""
    if model.get("missing"):
        return (
            f"Labelling with {model_title(model.get('name'))} until "
            f"{model_title(model.get('requested'))} is downloaded"
        )
    return (
        f"Using fallback model {model.get('name', '?')} "
        f"({model.get('requested', '?')} could not be loaded)"
    )


def _pause_item(status: Status | None, client: Commands | None, connected: bool) -> MenuItem:
    if visual_state(status) == "paused":
        return MenuItem("Resume", enabled=connected, action=_call(client, "resume"))
    return MenuItem("Pause", enabled=connected, action=_call(client, "pause"))


def _folder_items(
    status: Status | None, host: Host, client: Commands | None, connected: bool
) -> list[MenuItem]:
    return [
        _folders_item(status, host),
        _recent_item(status, host),
        MenuItem("Find photos\u2026", action=lambda: host.open_viewer("--search")),
        MenuItem(
            "Classify an image...",
            enabled=connected,
            action=lambda: host.open_viewer("--choose"),
        ),
        MenuItem("Rescan now", enabled=connected, action=_call(client, "rescan")),
    ]


def _setting_items(status: Status | None, host: Host, autostart_enabled: bool) -> list[MenuItem]:
    return [
        MenuItem(
            "Start at login",
            checked=autostart_enabled,
            action=lambda: host.set_autostart(not autostart_enabled),
        ),
        _xmp_item(status, host),
        MenuItem("Settings", action=lambda: host.open_path(settings_file(status))),
        MenuItem("Open log", action=lambda: host.open_path(log_target(status))),
    ]


def _end_items(host: Host, can_start_service: bool) -> list[MenuItem]:
    items = [MenuItem("Start service", action=host.start_service)] if can_start_service else []
    return [*items, MenuItem("Quit", action=host.quit)]


def _model_items(model: ModelStatus, client: Commands | None) -> list[MenuItem]:
    """Getting the configured model: the offer, the progress, or what went wrong."""
    fetch = model.get("fetch")
    missing = model.get("missing")
    if fetch and fetch.get("stage") in BUSY_STAGES:
        return [MenuItem(fetch_text(fetch), enabled=False)]
    if not missing:
        return []
    name = str(missing.get("name"))
    items = []
    if fetch and fetch.get("stage") == "failed":
        items.append(MenuItem(f"Download failed: {fetch.get('error')}"[:120], enabled=False))
    size = int(missing.get("download_bytes") or 0)
    label = f"Download {model_title(name)} ({human_size(size)})\u2026"
    action = (lambda: client.get_model(name)) if client is not None else None
    items.append(MenuItem(label, enabled=client is not None, action=action))
    return items


def _xmp_item(status: Status | None, host: Host) -> MenuItem:
    """Keywords for photo managers on or off (the service follows its config file)."""
    output = status.get("output") if status else None
    if not output:
        return MenuItem("Write XMP keywords", enabled=False)
    on = output.get("xmp") == "beside"
    return MenuItem("Write XMP keywords", checked=on, action=lambda: host.set_xmp(not on))


def _call(client: Commands | None, name: str) -> Callable[[], None] | None:
    if client is None:
        return None
    method: Callable[[], None] = getattr(client, name)
    return method


def _folders_item(status: Status | None, host: Host) -> MenuItem:
    folders = (status.get("folders") if status else None) or []
    if not folders:
        return MenuItem("Open watched folder", enabled=False)
    if len(folders) == 1:
        path = Path(str(folders[0].get("path")))
        return MenuItem("Open watched folder", action=lambda: host.open_path(path))
    entries = []
    for folder in folders:
        path = Path(str(folder.get("path")))
        label = str(path) if folder.get("healthy", True) else f"{path} (unavailable)"
        entries.append(MenuItem(label, action=_opener(host, path)))
    return MenuItem("Open watched folder", submenu=tuple(entries))


def _recent_item(status: Status | None, host: Host) -> MenuItem:
    recent = (status.get("recent") if status else None) or []
    if not recent:
        return MenuItem("Recent results", enabled=False)
    entries = []
    for entry in recent[:RECENT_MENU_ITEMS]:
        image = str(entry.get("image") or "")
        args = ["--image", image]
        if entry.get("sidecar"):
            args += ["--sidecar", str(entry["sidecar"])]
        entries.append(MenuItem(recent_label(entry), action=_viewer(host, args)))
    return MenuItem("Recent results", submenu=tuple(entries))


def recent_label(entry: RecentResult) -> str:
    """ "IMG_0001.jpg: golden retriever 83%" for one recent result."""
    name = Path(str(entry.get("image") or "?")).name
    if entry.get("status") != "ok":
        return f"{name}: could not be read"
    label = friendly(entry.get("label") or "?")
    score = entry.get("score")
    percent = f" {score * 100:.0f}%" if isinstance(score, int | float) else ""
    return f"{name}: {label}{percent}"


def _opener(host: Host, path: Path) -> Callable[[], None]:
    return lambda: host.open_path(path)


def _viewer(host: Host, args: list[str]) -> Callable[[], None]:
    return lambda: host.open_viewer(*args)


def settings_file(status: Status | None) -> Path:
    """The config file the service uses, created from the defaults if missing."""
    configured = status.get("config_path") if status else None
    path = Path(str(configured)) if configured else paths.config_file()
    return desktop.ensure_config_file(path)


def log_target(status: Status | None) -> Path:
    """The service's log file, or the log folder while there is none."""
    configured = status.get("log_path") if status else None
    path = Path(str(configured)) if configured else paths.log_dir() / "dropsight.log"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent
