"""What the tray menu offers, as the viewer's buttons (X11 trays have no menus) and dialog."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import tkinter as tk
from collections.abc import Callable
from pathlib import Path
from tkinter import filedialog, ttk
from typing import Protocol

from dropsight.config.edit import add_folders, remove_folders, set_value
from dropsight.config.settings import ConfigError, load
from dropsight.daemon.contracts import Status
from dropsight.daemon.core import paths
from dropsight.daemon.service import startfail
from dropsight.tray import autostart, desktop, theme
from dropsight.tray.desktop import TRAY_PID_ENV
from dropsight.tray.icons import fetching, model_of, model_title
from dropsight.tray.layout import fit_window
from dropsight.tray.menu import log_target, settings_file
from dropsight.tray.search import SearchWindow
from dropsight.tray.units import human_size
from dropsight.tray.worker import is_open

log = logging.getLogger(__name__)

# How long a clicked XMP box waits for the service to report the change before it shows
# what the service does again (the service checks its config file every 2 s).
XMP_APPLY_S = 8.0


Done = Callable[[Status | None], bool]


class Say(Protocol):
    """Shows a line in the window; with `done`, only until a status satisfies it."""

    def __call__(self, text: str, done: Done | None = None, /) -> None: ...


class Actions:
    """The tray's actions without the tray: start/stop, folders, settings, log, login, quit."""

    def __init__(
        self,
        status: Callable[[], Status | None],
        stop_service: Callable[[], None],
        get_model: Callable[[str], None] = lambda _name: None,
    ) -> None:
        self._status = status
        self._stop_service = stop_service
        self.get_model = get_model  # asks the service to download a model, then switch

    # Looked up at each use, so tests can watch what would be started or opened.
    def _spawn(self, command: list[str]) -> threading.Event:
        """Start one of our programs; the Event is set when it has ended (and is reaped)."""
        ended = threading.Event()
        process = desktop.spawn(command)
        if process is None:  # a test's stand-in for spawn
            return ended

        def reap() -> None:
            # Reaped when it ends (a service that stops while the viewer is open), so the
            # viewer leaves no defunct child behind.
            process.wait()
            ended.set()

        threading.Thread(target=reap, name="reaper", daemon=True).start()
        return ended

    def _open_path(self, path: Path) -> str | None:
        """Open with the desktop; a line to show when nothing could."""
        try:
            desktop.open_path(path)
        except desktop.OpenFailed as exc:
            log.warning("%s", exc)
            return str(exc)
        return None

    def config_path(self) -> Path:
        """The config file the running service uses (or would use)."""
        status = self._status()
        configured = status.get("config_path") if status else None
        return Path(configured) if configured else paths.config_file()

    def start_service(self) -> threading.Event:
        """Start `dropsight service` in the background; the Event is set if it ends."""
        return self._spawn(desktop.service_command())

    def stop_service(self) -> None:
        """Ask the running service to stop."""
        self._stop_service()

    def folders(self) -> list[Path]:
        """The watched folders: the config's (what the user edits), else the service's own
        (the default folder, or --watch on its command line)."""
        try:
            configured = list(load(self.config_path()).watch.folders)
        except ConfigError:
            configured = []
        status = self._status()
        folders = (status.get("folders") if status else None) or []
        return configured or [Path(f["path"]) for f in folders]

    def add_folder(self, folder: Path) -> str:
        """Watch one more folder (the service follows its config file); a line to show."""
        try:
            added = add_folders(self.config_path(), [folder])
        except (ConfigError, OSError) as exc:
            return f"Could not add {folder}: {exc}"
        return f"Watching {folder}" if added else f"{folder} is watched already"

    def remove_folder(self, folder: Path) -> str:
        """Stop watching a folder; a line to show."""
        try:
            removed = remove_folders(self.config_path(), [folder])
        except (ConfigError, OSError) as exc:
            return f"Could not remove {folder}: {exc}"
        return f"No longer watching {folder}" if removed else f"{folder} was not in the config"

    def open_folder(self, folder: Path) -> str | None:
        """Show a folder in the file manager; a line to show if nothing could."""
        return self._open_path(folder)

    def open_settings(self) -> str | None:
        """Open the config file (created from the documented defaults if missing)."""
        return self._open_path(settings_file(self._status()))

    def open_log(self) -> str | None:
        """Open the service's log."""
        return self._open_path(log_target(self._status()))

    def start_at_login(self) -> bool:
        """Whether Dropsight starts at login."""
        try:
            return autostart.is_enabled()
        except OSError:
            return False

    def set_start_at_login(self, enabled: bool) -> None:
        """Turn starting at login on or off."""
        if enabled:
            autostart.enable()
        else:
            autostart.disable()

    def xmp_enabled(self) -> bool:
        """Whether the service writes XMP keywords."""
        status = self._status()
        output = status.get("output") if status else None
        return output is not None and output.get("xmp") == "beside"

    def set_xmp(self, enabled: bool) -> str | None:
        """Turn XMP keywords on or off in the config; an error line, or None."""
        try:
            set_value(self.config_path(), "output", "xmp", "beside" if enabled else "off")
        except (ConfigError, OSError) as exc:
            return f"Could not change the XMP setting: {exc}"
        return None

    def quit_all(self) -> None:
        """Stop the service and the tray that opened this viewer (Quit in the tray menu)."""
        try:
            self._stop_service()
        except Exception as exc:  # not running: nothing to stop
            log.info("no service to stop: %s", exc)
        tray = os.environ.get(TRAY_PID_ENV)
        if tray and tray.isdigit() and int(tray) != os.getpid():
            try:
                os.kill(int(tray), signal.SIGTERM)
            except OSError as exc:
                log.info("the tray (pid %s) is gone: %s", tray, exc)


class ControlBar:
    """The row of buttons under the viewer's status line."""

    def __init__(
        self,
        parent: tk.Misc,
        actions: Actions,
        *,
        on_message: Say,
        on_quit: Callable[[], None],
    ) -> None:
        self.actions = actions
        self._on_message = on_message
        self._on_quit = on_quit
        self.frame = ttk.Frame(parent, padding=(12, 0, 12, 4), name="controls")
        self._build_buttons()
        self._build_switches()
        self.dialog: FoldersDialog | None = None
        self.search: SearchWindow | None = None
        self._running = False

    def _build_buttons(self) -> None:
        """First row: service, find, folders, settings, log ... quit."""
        actions = self.actions
        self.service_button = ttk.Button(
            self.frame, text="Start service", command=self._toggle_service, name="service"
        )
        self.folders_button = ttk.Button(
            self.frame, text="Folders\u2026", command=self.open_folders, name="folders"
        )
        self.find_button = ttk.Button(
            self.frame, text="Find photos\u2026", command=self.open_search, name="find"
        )
        self.settings_button = ttk.Button(
            self.frame,
            text="Settings",
            command=lambda: self._report(actions.open_settings()),
            name="settings",
        )
        self.log_button = ttk.Button(
            self.frame,
            text="Open log",
            command=lambda: self._report(actions.open_log()),
            name="log",
        )
        self.quit_button = ttk.Button(
            self.frame, text="Quit Dropsight", command=self._quit, name="quit"
        )
        buttons = (
            self.service_button,
            self.find_button,
            self.folders_button,
            self.settings_button,
            self.log_button,
        )
        for column, widget in enumerate(buttons):
            widget.grid(row=0, column=column, padx=(0, 6))
        self.frame.columnconfigure(len(buttons), weight=1)
        self.quit_button.grid(row=0, column=len(buttons) + 1, sticky="e")

    def _build_switches(self) -> None:
        """Second row: the two switches, and the first-run download offer."""
        # Each box has a variable of its own: a ttk checkbutton without one shows the
        # half-checked "alternate" look and, once clicked, follows a variable named after
        # its path instead of what we set (issue 21: the XMP box showed the opposite).
        self.login_value = Flag(self.frame)
        self.login_check = ttk.Checkbutton(
            self.frame,
            text="Start at login",
            command=self._toggle_login,
            variable=self.login_value,
            name="login",
        )
        self.login_value.set(self.actions.start_at_login())
        self.xmp_value = Flag(self.frame)
        self.xmp_check = ttk.Checkbutton(
            self.frame,
            text="Write XMP keywords",
            command=self._toggle_xmp,
            variable=self.xmp_value,
            name="xmp",
        )
        self.xmp_check.state(["disabled"])  # until the service says what it does
        self._xmp_wanted: tuple[bool, float] | None = None  # a click the service has not seen
        # Shown only while the configured model's weights are missing (first run).
        self.download_button = ttk.Button(self.frame, command=self._download, name="download")
        self._missing: str | None = None
        self.login_check.grid(row=1, column=0, sticky="w", pady=(4, 0))
        self.xmp_check.grid(row=1, column=1, columnspan=2, sticky="w", pady=(4, 0))
        self.download_button.grid(row=1, column=3, columnspan=2, sticky="w", pady=(4, 0))
        self.download_button.grid_remove()

    def show(self, status: Status | None) -> None:
        """Follow the service: Start when none runs, Stop when one does."""
        self._running = status is not None and status.get("state") != "stopping"
        self.service_button.configure(text="Stop service" if self._running else "Start service")
        self._show_xmp(status)
        self.login_value.set(self.actions.start_at_login())
        model = model_of(status)
        missing = model.get("missing") if model else None
        self._missing = missing["name"] if missing and not fetching(status) else None
        if missing and self._missing:
            size = human_size(int(missing.get("download_bytes") or 0))
            self.download_button.configure(
                text=f"Download {model_title(self._missing)} ({size})\u2026"
            )
            self.download_button.grid()
        else:
            self.download_button.grid_remove()
        if self.dialog is not None and self.dialog.alive:
            self.dialog.refresh()

    def _show_xmp(self, status: Status | None) -> None:
        """The XMP box says what the service does (a click shows at once, until it applies)."""
        self.xmp_check.state(["!disabled" if status is not None else "disabled"])
        actual = self.actions.xmp_enabled()
        wanted = self._xmp_wanted
        if wanted is not None and (actual == wanted[0] or time.monotonic() > wanted[1]):
            self._xmp_wanted = wanted = None
        self.xmp_value.set(actual if wanted is None else wanted[0])

    def _report(self, problem: str | None) -> None:
        if problem:
            self._on_message(problem)

    def _toggle_service(self) -> None:
        # Each message stays only until the status shows the outcome, never after it.
        if self._running:
            self.actions.stop_service()
            self._on_message("Stopping the service\u2026", lambda status: status is None)
        else:
            clicked = time.time()
            ended = self.actions.start_service()
            self._on_message(
                "Starting the service\u2026",
                lambda status: (
                    status is not None
                    or ended.is_set()
                    or startfail.read(since=clicked) is not None
                ),
            )

    def _download(self) -> None:
        if self._missing:
            self.actions.get_model(self._missing)
            self._on_message(f"Downloading {model_title(self._missing)}\u2026", _download_answered)

    def _toggle_login(self) -> None:
        try:
            self.actions.set_start_at_login(self.login_value.get())
        except OSError as exc:
            self._on_message(f"Could not change start at login: {exc}")
        self.login_value.set(self.actions.start_at_login())

    def _toggle_xmp(self) -> None:
        wanted = self.xmp_value.get()
        problem = self.actions.set_xmp(wanted)
        if problem:
            self._on_message(problem)
            self._xmp_wanted = None
            self.xmp_value.set(self.actions.xmp_enabled())
            return
        # The service applies the config at its next check (about 2 s); until it reports
        # the change, or if it never does, the box goes back to what the service says.
        self._xmp_wanted = (wanted, time.monotonic() + XMP_APPLY_S)

    def _quit(self) -> None:
        self.actions.quit_all()
        self._on_quit()

    def open_search(self) -> SearchWindow:
        """Show the find-photos window (one at a time)."""
        if self.search is None or not self.search.alive:
            self.search = SearchWindow(self.frame.winfo_toplevel())
        self.search.window.lift()
        self.search.entry.focus_set()
        return self.search

    def open_folders(self) -> FoldersDialog:
        """Show the watched-folders dialog (one at a time)."""
        if self.dialog is None or not self.dialog.alive:
            self.dialog = FoldersDialog(self.frame.winfo_toplevel(), self.actions, self._on_message)
        self.dialog.window.lift()
        return self.dialog


class FoldersDialog:
    """Watched folders: add (with a folder picker), remove, open."""

    def __init__(
        self,
        parent: tk.Misc,
        actions: Actions,
        on_message: Say,
        choose_folder: Callable[[], str | None] | None = None,
    ) -> None:
        self.actions = actions
        self._on_message = on_message
        self.choose_folder = choose_folder or self._ask_folder
        self.window = tk.Toplevel(parent, name="folders")
        self.window.title("Dropsight: watched folders")
        fit_window(self.window, (680, 380), (480, 300))
        self.window.bind("<Escape>", lambda _e: self.close())
        colours = theme.palette(self.window)
        self.window.columnconfigure(0, weight=1)
        self.window.rowconfigure(1, weight=1)
        ttk.Label(
            self.window,
            text="New photos in these folders (and their sub-folders) are labelled.",
            padding=(10, 10, 10, 4),
        ).grid(row=0, column=0, columnspan=2, sticky="w")
        self.listbox = tk.Listbox(
            self.window,
            height=8,
            name="list",
            activestyle="none",
            background=colours.list_bg,
            foreground=colours.text,
            selectbackground=colours.select_bg,
            selectforeground=colours.text,
            highlightthickness=0,
            borderwidth=0,
        )
        self.listbox.grid(row=1, column=0, sticky="nsew", padx=(10, 6), pady=4)
        buttons = ttk.Frame(self.window, padding=(0, 4, 10, 4))
        buttons.grid(row=1, column=1, sticky="n")
        self.add_button = ttk.Button(buttons, text="Add folder\u2026", command=self.add, name="add")
        self.remove_button = ttk.Button(buttons, text="Remove", command=self.remove, name="remove")
        self.open_button = ttk.Button(buttons, text="Open", command=self.open, name="open")
        for row, button in enumerate((self.add_button, self.remove_button, self.open_button)):
            button.grid(row=row, column=0, sticky="ew", pady=2)
        bottom = ttk.Frame(self.window, padding=(10, 4, 10, 10))
        bottom.grid(row=2, column=0, columnspan=2, sticky="ew")
        bottom.columnconfigure(0, weight=1)
        self.note = ttk.Label(bottom, text="", name="note")
        self.note.grid(row=0, column=0, sticky="w")
        bottom.bind("<Configure>", lambda e: self.note.configure(wraplength=max(e.width - 120, 99)))
        self.close_button = ttk.Button(bottom, text="Close", command=self.close, name="close")
        self.close_button.grid(row=0, column=1, sticky="e")
        self._shown: list[Path] = []
        self.refresh()

    @property
    def alive(self) -> bool:
        """Whether the dialog is still open."""
        return is_open(self.window)

    def refresh(self) -> None:
        """Show the current list."""
        folders = self.actions.folders()
        if folders == self._shown:
            return
        self._shown = folders
        self.listbox.delete(0, "end")
        for folder in folders:
            self.listbox.insert("end", str(folder))

    def _ask_folder(self) -> str | None:
        start = self._shown[0] if self._shown else paths.default_watch_folder().parent
        chosen = filedialog.askdirectory(
            parent=self.window, title="Watch a folder", initialdir=str(start), mustexist=True
        )
        return chosen or None

    def _selected(self) -> Path | None:
        picked = self.listbox.curselection()
        return self._shown[picked[0]] if picked else None

    def add(self) -> None:
        """Pick a folder and watch it."""
        chosen = self.choose_folder()
        if chosen:
            self._say(self.actions.add_folder(Path(chosen).expanduser().absolute()))
            self.refresh()

    def remove(self) -> None:
        """Stop watching the selected folder."""
        folder = self._selected()
        if folder is None:
            self._say("Select a folder to remove.")
            return
        self._say(self.actions.remove_folder(folder))
        self.refresh()

    def open(self) -> None:
        """Open the selected folder in the file manager."""
        folder = self._selected()
        if folder is not None:
            problem = self.actions.open_folder(folder)
            if problem:
                self._say(problem)

    def _say(self, text: str) -> None:
        self.note.configure(text=text)
        self._on_message(text)

    def close(self) -> None:
        """Close the dialog."""
        if self.alive:
            self.window.destroy()


def _download_answered(status: Status | None) -> bool:
    """Whether the service shows the download (or its failure), or is gone."""
    model = model_of(status)
    return model is None or bool(model.get("fetch"))


class Flag(tk.BooleanVar):
    """A check box's Tk variable that never calls Tk when Python collects it.

    tk.Variable.__del__ unsets its Tcl variable; run by a worker thread's garbage
    collection it calls Tk off the main thread and Tcl aborts the process. The variable
    lives in its window's interpreter and goes with it.
    """

    def __del__(self) -> None:
        pass
