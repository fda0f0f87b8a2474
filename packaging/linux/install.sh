#!/bin/sh
# Install Dropsight for this user only (no root): run from the unpacked release archive.
#
#   ./install.sh [--systemd] [--no-autostart] [--prefix DIR]
#
#   --systemd        also enable and start the systemd user unit that runs the service
#                    headless (`dropsight service`); the tray then finds it running
#   --no-autostart   do not start the tray at login (XDG autostart entry)
#   --prefix DIR     install under DIR instead of ~/.local
#
# Puts the app in PREFIX/share/dropsight/app, links PREFIX/bin/dropsight and
# PREFIX/bin/dropsight-tray, adds a menu entry, the tray's autostart entry and the systemd
# user unit file. Re-running it upgrades in place (the running app is stopped first).
# Remove with PREFIX/share/dropsight/uninstall.sh: it keeps your config and sidecars.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX="$HOME/.local"
SYSTEMD=0
AUTOSTART=1

while [ $# -gt 0 ]; do
    case "$1" in
        --systemd) SYSTEMD=1 ;;
        --no-autostart) AUTOSTART=0 ;;
        --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a folder" >&2; exit 2; }
                  PREFIX=$2; shift ;;
        --prefix=*) PREFIX=${1#--prefix=} ;;
        -h|--help) sed -n '2,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

case "$PREFIX" in /*) ;; *) PREFIX="$(pwd)/$PREFIX" ;; esac
BUNDLE="$HERE/dropsight"
SHARE="$PREFIX/share/dropsight"
APPDIR="$SHARE/app"
BINDIR="$PREFIX/bin"
DATA_HOME="${XDG_DATA_HOME:-$HOME/.local/share}"
CONFIG_HOME="${XDG_CONFIG_HOME:-$HOME/.config}"
APPLICATIONS="$DATA_HOME/applications"
ICONS="$DATA_HOME/icons/hicolor/64x64/apps"
AUTOSTART_DIR="$CONFIG_HOME/autostart"
UNIT_DIR="$CONFIG_HOME/systemd/user"

if [ ! -x "$BUNDLE/dropsight" ] || [ ! -x "$BUNDLE/dropsight-tray" ]; then
    echo "install.sh: no Dropsight bundle at $BUNDLE (run this from the unpacked release)" >&2
    exit 1
fi

# Quote a path for a desktop entry Exec key: a double-quoted argument with " ` $ \ escaped,
# then the string-value escaping of the key (each \ doubled).
desktop_quote() {
    printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"`$]/\\&/g')" | sed 's/\\/\\\\/g'
}
# Quote a path for systemd ExecStart: double quotes, \ and " escaped, % and $ doubled.
systemd_quote() {
    printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g; s/%/%%/g; s/\$/$$/g')"
}
# Escape a replacement string for sed (delimiter |).
sed_repl() {
    printf '%s' "$1" | sed 's/[\\|&]/\\&/g'
}

# 1. Stop a running copy (an upgrade replaces its files).
# (systemd unit, then `dropsight stop`, then the tray; see uninstall.sh --stop-only)
WAS_ACTIVE=0
if command -v systemctl >/dev/null 2>&1 && systemctl --user is-active --quiet dropsight.service 2>/dev/null; then
    WAS_ACTIVE=1
fi
if [ -x "$APPDIR/dropsight" ]; then
    echo "Stopping the running Dropsight (if any)..."
    sh "$HERE/uninstall.sh" --prefix "$PREFIX" --stop-only || true
fi

# 2. The app: copied beside the old one, then swapped in.
mkdir -p "$SHARE" "$BINDIR"
rm -rf "$APPDIR.new" "$APPDIR.old"
cp -R "$BUNDLE" "$APPDIR.new"
if [ -e "$APPDIR" ]; then mv "$APPDIR" "$APPDIR.old"; fi
mv "$APPDIR.new" "$APPDIR"
rm -rf "$APPDIR.old"
cp "$HERE/uninstall.sh" "$SHARE/uninstall.sh"
chmod 755 "$SHARE/uninstall.sh"
ln -sfn "$APPDIR/dropsight" "$BINDIR/dropsight"
ln -sfn "$APPDIR/dropsight-tray" "$BINDIR/dropsight-tray"

# 3. Menu entry (and icon when the release has one).
TRAY_EXEC=$(desktop_quote "$APPDIR/dropsight-tray")
mkdir -p "$APPLICATIONS"
sed "s|@TRAY_EXEC@|$(sed_repl "$TRAY_EXEC")|g" "$HERE/share/dropsight.desktop" \
    > "$APPLICATIONS/dropsight.desktop"
if [ -f "$HERE/share/dropsight.png" ]; then
    mkdir -p "$ICONS"
    cp "$HERE/share/dropsight.png" "$ICONS/dropsight.png"
fi

# 4. Tray at login: the same entry `dropsight autostart enable|disable` manages.
if [ "$AUTOSTART" = 1 ]; then
    mkdir -p "$AUTOSTART_DIR"
    {
        echo "[Desktop Entry]"
        echo "Type=Application"
        echo "Name=Dropsight"
        echo "Comment=Label new photos in watched folders"
        echo "Exec=$TRAY_EXEC"
        echo "Icon=dropsight"
        echo "Terminal=false"
        echo "X-GNOME-Autostart-enabled=true"
    } > "$AUTOSTART_DIR/dropsight.desktop"
fi

# 5. systemd user unit (installed always, enabled with --systemd).
mkdir -p "$UNIT_DIR"
CLI_EXEC=$(systemd_quote "$APPDIR/dropsight")
sed "s|@CLI_EXEC@|$(sed_repl "$CLI_EXEC")|g" "$HERE/share/dropsight.service" \
    > "$UNIT_DIR/dropsight.service"
HAVE_SYSTEMD=0
if command -v systemctl >/dev/null 2>&1 && systemctl --user show-environment >/dev/null 2>&1; then
    HAVE_SYSTEMD=1
    systemctl --user daemon-reload || true
fi
if [ "$SYSTEMD" = 1 ] || [ "$WAS_ACTIVE" = 1 ]; then
    if [ "$HAVE_SYSTEMD" = 1 ]; then
        systemctl --user enable dropsight.service
        systemctl --user restart dropsight.service
    else
        echo "install.sh: no systemd user session here; the unit is at" \
             "$UNIT_DIR/dropsight.service (enable it with: systemctl --user enable --now dropsight)" >&2
    fi
fi

if command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database "$APPLICATIONS" >/dev/null 2>&1 || true
fi

echo "Dropsight installed in $APPDIR"
echo "  command:    $BINDIR/dropsight (classify, service, tray, status, ...)"
echo "  menu entry: $APPLICATIONS/dropsight.desktop"
if [ "$AUTOSTART" = 1 ]; then echo "  autostart:  $AUTOSTART_DIR/dropsight.desktop (the tray starts at login)"; fi
echo "  systemd:    $UNIT_DIR/dropsight.service$( [ "$SYSTEMD" = 1 ] && echo ' (enabled)' || echo ' (not enabled; --systemd enables it)')"
echo "  uninstall:  $SHARE/uninstall.sh (keeps your config and sidecars)"
echo "Watched folders are set in ${XDG_CONFIG_HOME:-$HOME/.config}/dropsight/config.toml (watch.folders)."
case ":${PATH:-}:" in
    *":$BINDIR:"*) ;;
    *) echo "Note: $BINDIR is not on your PATH; add it to run \`dropsight\` by name." ;;
esac
