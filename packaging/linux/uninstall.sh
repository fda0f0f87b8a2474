#!/bin/sh
# Remove a per-user Dropsight install made by install.sh.
#
#   ~/.local/share/dropsight/uninstall.sh [--prefix DIR]
#
# Stops the running service and tray, then removes the app, the command links, the menu
# entry, the tray's autostart entry and the systemd user unit. Keeps what is yours: the
# config (~/.config/dropsight), cache and logs, and every sidecar next to your photos.
set -eu

PREFIX="$HOME/.local"
STOP_ONLY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || { echo "uninstall.sh: --prefix needs a folder" >&2; exit 2; }
                  PREFIX=$2; shift ;;
        --prefix=*) PREFIX=${1#--prefix=} ;;
        --stop-only) STOP_ONLY=1 ;;  # used by install.sh before an upgrade
        -h|--help) sed -n '2,9s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "uninstall.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

case "$PREFIX" in /*) ;; *) PREFIX="$(pwd)/$PREFIX" ;; esac
SHARE="$PREFIX/share/dropsight"
APPDIR="$SHARE/app"
BINDIR="$PREFIX/bin"
DATA_HOME="${XDG_DATA_HOME:-$HOME/.local/share}"
CONFIG_HOME="${XDG_CONFIG_HOME:-$HOME/.config}"
UNIT="$CONFIG_HOME/systemd/user/dropsight.service"

# This user's processes whose executable lives in $APPDIR (also after its files were
# replaced: the kernel then reports "<path> (deleted)"). With "service": only
# `dropsight service` processes.
our_pids() {
    me=$(id -u)
    for d in /proc/[0-9]*; do
        [ -O "$d" ] || [ "$me" = 0 ] || continue
        exe=$(readlink "$d/exe" 2>/dev/null) || continue
        case "$exe" in "$APPDIR"/*) ;; *) continue ;; esac
        if [ "${1:-}" = service ]; then
            [ "$(tr '\0' '\n' < "$d/cmdline" 2>/dev/null | sed -n 2p)" = service ] || continue
        fi
        echo "${d#/proc/}"
    done
}

# Wait up to $2 tenths of a second for `our_pids $1` to be empty.
wait_gone() {
    i=0
    while [ $i -lt "$2" ]; do
        [ -n "$(our_pids "$1")" ] || return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

stop_app() {
    if command -v systemctl >/dev/null 2>&1 && [ -f "$UNIT" ]; then
        systemctl --user stop dropsight.service >/dev/null 2>&1 || true
    fi
    # The service first, through its control API: it finishes the sidecar in hand and exits 0.
    if [ -x "$APPDIR/dropsight" ] && "$APPDIR/dropsight" stop >/dev/null 2>&1; then
        wait_gone service 150 || true
    fi
    # Then the rest (the tray, a service that did not answer): SIGTERM, then SIGKILL.
    pids=$(our_pids)
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086  # word splitting of the pid list is intended
    kill -TERM $pids 2>/dev/null || true
    wait_gone all 100 && return 0
    pids=$(our_pids)
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
}

stop_app
[ "$STOP_ONLY" = 1 ] && exit 0

if command -v systemctl >/dev/null 2>&1 && [ -f "$UNIT" ]; then
    systemctl --user disable dropsight.service >/dev/null 2>&1 || true
fi
rm -f "$UNIT"
if command -v systemctl >/dev/null 2>&1 && systemctl --user show-environment >/dev/null 2>&1; then
    systemctl --user daemon-reload || true
fi

# Links only when they are ours.
for name in dropsight dropsight-tray; do
    link="$BINDIR/$name"
    if [ -L "$link" ]; then
        case "$(readlink "$link")" in "$APPDIR"/*) rm -f "$link" ;; esac
    fi
done

rm -f "$DATA_HOME/applications/dropsight.desktop"
rm -f "$DATA_HOME/icons/hicolor/64x64/apps/dropsight.png"
# The tray's autostart entry (written by install.sh or by `dropsight autostart enable` of this
# install; one that starts another copy, e.g. a source checkout, is left alone).
AUTOSTART="$CONFIG_HOME/autostart/dropsight.desktop"
if [ -f "$AUTOSTART" ] && grep -qF "$APPDIR/" "$AUTOSTART"; then
    rm -f "$AUTOSTART"
fi
if command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database "$DATA_HOME/applications" >/dev/null 2>&1 || true
fi

rm -rf "$APPDIR" "$APPDIR.new" "$APPDIR.old"
rm -f "$SHARE/uninstall.sh"
rmdir "$SHARE" 2>/dev/null || true

echo "Dropsight removed from $APPDIR."
echo "Kept: your config (${CONFIG_HOME}/dropsight), cache, logs and all sidecar files."
