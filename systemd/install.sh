#!/bin/sh
# akkoord: turn a Raspberry Pi OS Lite / Debian 12 (bookworm) machine into an akkoord device.
#
#   sudo make install                      (the same as: sudo systemd/install.sh)
#   sudo systemd/install.sh [--packages auto|distro|pypi] [--simulated] [--no-start]
#   sudo systemd/install.sh --uninstall [--purge]       (make uninstall [PURGE=1])
#
# Non-interactive and idempotent: run it again to upgrade. Recordings, keys and configuration
# (/var/lib/akkoord, /etc/akkoord) are never touched, except --uninstall --purge.
#
# What it does (each step skips what is already right):
#  1. Debian packages the program needs (apt-get, only the missing ones).
#  2. A non-editable copy of the program in its own venv, /opt/akkoord/releases/VERSION-STAMP,
#     then /opt/akkoord/current -> that release (an atomic symlink swap: a failed upgrade leaves
#     the running release in place). The units run /opt/akkoord/current/bin/akkoord.
#     --packages distro: a venv with --system-site-packages and the distribution's gpiozero,
#       lgpio and PyAudio (Raspberry Pi OS carries the Pi 5 gpiochip fix in its packages).
#     --packages pypi: an isolated venv, everything from PyPI (lgpio as a wheel on aarch64 and
#       armv7, declared in pyproject.toml; PyAudio compiled against PortAudio).
#     auto (default): distro where the distribution has python3-lgpio (Raspberry Pi OS), else pypi.
#  3. The system user "akkoord" (groups audio, gpio), directories, units, udev rules, tmpfiles;
#     enables akkoord.service and the root helpers' path units; (re)starts the service when
#     the device already has its identity.
#  4. Prints what is left to do by hand. It never prints a key or any other secret.
#
# --simulated: the documented simulated configuration (systemd/README.md): mock GPIO pins, a
# WAV file as microphone, presses through `akkoord simulate a`; for containers and tests.
set -eu

PREFIX=/opt/akkoord
CURRENT=$PREFIX/current
EXE=$CURRENT/bin/akkoord
USER_NAME=akkoord
STATE=/var/lib/akkoord
CONF=/etc/akkoord
UNITS=/etc/systemd/system
UDEV=/etc/udev/rules.d
TMPFILES=/etc/tmpfiles.d/akkoord.conf
LINK=/usr/local/bin/akkoord
SIM_WAV=$PREFIX/simulated/microphone.wav
SRC=$(cd "$(dirname "$0")/.." && pwd)

say() { printf 'akkoord install: %s\n' "$*"; }
die() { printf 'akkoord install: error: %s\n' "$*" >&2; exit 1; }

packages=auto simulated=0 start=1 mode=install purge=0
while [ $# -gt 0 ]; do
    case $1 in
        --packages) [ $# -ge 2 ] || die "--packages needs auto, distro or pypi"; packages=$2; shift ;;
        --packages=*) packages=${1#*=} ;;
        --simulated) simulated=1 ;;
        --no-start) start=0 ;;
        --uninstall) mode=uninstall ;;
        --purge) purge=1 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
case $packages in auto|distro|pypi) ;; *) die "--packages $packages: use auto, distro or pypi" ;; esac
[ "$purge" = 0 ] || [ "$mode" = uninstall ] || die "--purge only goes with --uninstall"
[ "$(id -u)" = 0 ] || die "run me as root: sudo make install"

# systemd running (a booted machine or container) or not (a chroot, e.g. make pi-smoke)?
booted=0
[ -d /run/systemd/system ] && booted=1
systemctl_() { if [ "$booted" = 1 ]; then systemctl "$@"; else systemctl --root=/ "$@" 2>/dev/null || true; fi; }

# --- uninstall ------------------------------------------------------------------------------
if [ "$mode" = uninstall ]; then
    if [ "$booted" = 1 ]; then
        systemctl disable --now akkoord.service akkoord-clock.path akkoord-eject.path 2>/dev/null || true
        systemctl stop 'akkoord-stick@*.service' 2>/dev/null || true
    fi
    rm -f "$UNITS/akkoord.service" "$UNITS/akkoord-stick@.service" "$UNITS/akkoord-clock.path" \
          "$UNITS/akkoord-clock.service" "$UNITS/akkoord-eject.path" "$UNITS/akkoord-eject.service"
    rm -rf "$UNITS/akkoord-stick@.service.d" "$UNITS/akkoord.service.d"
    rm -f "$UDEV/99-akkoord-stick.rules" "$UDEV/98-akkoord-gpio.rules" "$TMPFILES"
    [ -L "$LINK" ] && rm -f "$LINK"
    rm -rf "$PREFIX"
    [ "$booted" = 1 ] && systemctl daemon-reload
    if [ "$purge" = 1 ]; then
        rm -rf "$STATE" "$CONF" /run/akkoord
        if id "$USER_NAME" >/dev/null 2>&1; then userdel "$USER_NAME" 2>/dev/null || true; fi
        say "removed the program, its units, the user $USER_NAME, the configuration and ALL RECORDINGS AND KEYS ($STATE)"
    else
        say "removed the program and its units."
        say "kept: recordings, keys and custody log in $STATE, configuration in $CONF, user $USER_NAME."
        say "to remove those too (recordings are lost): sudo systemd/install.sh --uninstall --purge"
    fi
    exit 0
fi

# --- 0. where we are ------------------------------------------------------------------------
case $SRC in
    "$PREFIX"|"$PREFIX"/*) die "the source is inside $PREFIX; clone the repository elsewhere (e.g. ~/akkoord)" ;;
esac
if [ ! -f "$SRC/pyproject.toml" ] || [ ! -d "$SRC/device/akkoord" ]; then
    die "$SRC is not an akkoord source tree"
fi
command -v python3 >/dev/null 2>&1 || die "python3 is missing: apt-get install python3"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$(python3 --version 2>&1) is too old: akkoord needs Python 3.11 (Debian 12) or newer"
arch=$(dpkg --print-architecture 2>/dev/null || uname -m)

has_candidate() { apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [^(]'; }
if [ "$packages" = auto ]; then
    if has_candidate python3-lgpio; then packages=distro; else packages=pypi; fi
fi

# --- 1. Debian packages ---------------------------------------------------------------------
want="python3-venv libportaudio2"
if [ "$packages" = distro ]; then
    want="$want python3-pyaudio python3-gpiozero"
    has_candidate python3-lgpio && want="$want python3-lgpio"
else
    want="$want portaudio19-dev gcc python3-dev"    # PyAudio has no Linux wheel: it compiles
fi
has_candidate util-linux-extra && want="$want util-linux-extra"    # hwclock (bookworm)
missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    say "installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null || die "apt-get install$missing failed"
fi

# --- 2. the program -------------------------------------------------------------------------
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$SRC/pyproject.toml" | head -n 1)
release=$PREFIX/releases/$version-$(date -u +%Y%m%dT%H%M%SZ)-$$
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
# Build from a copy: pip would otherwise leave root-owned build/ and *.egg-info in the clone.
tar -C "$SRC" --exclude=./.venv --exclude=./build --exclude=./.git --exclude='*.egg-info' \
    --exclude=./demo-out --exclude='__pycache__' -cf - . | tar -C "$build" -xf -
mkdir -p "$PREFIX/releases"
venv_opts=""
[ "$packages" = distro ] && venv_opts="--system-site-packages"
say "installing akkoord $version into $release ($packages packages, $arch)"
# shellcheck disable=SC2086
python3 -m venv $venv_opts "$release" || die "cannot create the venv $release"
if ! "$release/bin/python" -m pip install -q --no-cache-dir --disable-pip-version-check \
        "$build" >"$build/pip.log" 2>&1; then
    tail -n 25 "$build/pip.log" >&2
    rm -rf "$release"
    die "pip install failed (the release that was running, if any, is still in place)"
fi
"$release/bin/akkoord" --version >/dev/null || { rm -rf "$release"; die "the new release does not run"; }
echo "$packages" > "$release/.akkoord-packages"
ln -sfn "releases/$(basename "$release")" "$PREFIX/current.new"
mv -T "$PREFIX/current.new" "$CURRENT"
# Keep the previous release (for going back by hand), remove older ones.
# Release names sort by their UTC time stamp (VERSION-STAMP-PID: same VERSION, so by time).
find "$PREFIX/releases" -mindepth 1 -maxdepth 1 -type d ! -path "$release" | sort -t- -k2 -r \
    | tail -n +2 | while read -r old; do rm -rf "$old"; done
ln -sfn "$EXE" "$LINK"

# --- 3. user, directories, units ------------------------------------------------------------
getent group gpio >/dev/null || groupadd --system gpio
getent group audio >/dev/null || groupadd --system audio
if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$STATE" --no-create-home \
        --shell /usr/sbin/nologin --comment "akkoord recorder" "$USER_NAME"
fi
usermod -a -G audio,gpio "$USER_NAME"

install -d -m 0755 "$CONF"
install -d -m 0700 -o "$USER_NAME" -g "$USER_NAME" "$STATE"
# An upgrade from a root-run recorder: hand the state over (keys, recordings, custody log).
find "$STATE" \( ! -user "$USER_NAME" -o ! -group "$USER_NAME" \) -exec chown -h "$USER_NAME:$USER_NAME" {} +

install -m 0644 "$SRC/systemd/akkoord.service" "$SRC/systemd/akkoord-stick@.service" \
    "$SRC/systemd/akkoord-clock.path" "$SRC/systemd/akkoord-clock.service" \
    "$SRC/systemd/akkoord-eject.path" "$SRC/systemd/akkoord-eject.service" "$UNITS/"
install -d -m 0755 "$UDEV"
install -m 0644 "$SRC/systemd/99-akkoord-stick.rules" "$SRC/systemd/98-akkoord-gpio.rules" "$UDEV/"
install -m 0644 "$SRC/systemd/akkoord.tmpfiles" "$TMPFILES"
install -d -m 0755 "$UNITS/akkoord-stick@.service.d"
if [ "$simulated" = 1 ]; then
    rm -f "$UNITS/akkoord-stick@.service.d/device.conf"
    install -m 0644 "$SRC/systemd/simulated/stick.conf" "$UNITS/akkoord-stick@.service.d/simulated.conf"
    install -d -m 0755 "$UNITS/akkoord.service.d" "$PREFIX/simulated"
    install -m 0644 "$SRC/systemd/simulated/akkoord.conf" "$UNITS/akkoord.service.d/simulated.conf"
    [ -f "$SIM_WAV" ] || "$EXE" simulate-microphone "$SIM_WAV"
    if [ ! -f "$CONF/akkoord.toml" ]; then
        install -m 0644 "$SRC/systemd/simulated/akkoord.toml" "$CONF/akkoord.toml"
    elif ! grep -q '^pin_factory *= *"mock"' "$CONF/akkoord.toml"; then
        say "warning: $CONF/akkoord.toml exists and does not say pin_factory = \"mock\"; left as it is"
    fi
else
    rm -f "$UNITS/akkoord-stick@.service.d/simulated.conf" "$UNITS/akkoord.service.d/simulated.conf"
    install -m 0644 "$SRC/systemd/akkoord-stick@.service.d/device.conf" "$UNITS/akkoord-stick@.service.d/"
fi

if [ "$booted" = 1 ]; then
    systemd-tmpfiles --create "$TMPFILES"
    systemctl daemon-reload
    if command -v udevadm >/dev/null 2>&1 && [ -S /run/udev/control ]; then
        udevadm control --reload || true
        udevadm trigger --subsystem-match=gpio --action=change || true
    fi
fi
systemctl_ enable akkoord.service akkoord-clock.path akkoord-eject.path >/dev/null 2>&1 || \
    die "systemctl enable failed"
[ "$booted" = 1 ] && systemctl start akkoord-clock.path akkoord-eject.path

identity=0
[ -f "$STATE/keys/device.key" ] && identity=1
if [ "$booted" = 1 ] && [ "$start" = 1 ] && [ "$identity" = 1 ]; then
    say "restarting akkoord.service"
    systemctl restart akkoord.service || say "warning: akkoord.service did not start: journalctl -u akkoord"
fi

# --- 4. what is left ------------------------------------------------------------------------
say "installed akkoord $version: $EXE (also $LINK)"
todo=1
step() { say "  $todo. $*"; todo=$((todo + 1)); }
say "left to do by hand:"
if [ "$identity" = 0 ]; then
    step "make the device's identity:  sudo -u $USER_NAME akkoord keys init"
fi
if [ -z "$(find "$STATE/keys/recipients" -type f 2>/dev/null | head -n 1)" ]; then
    step "add the organisation's public key:  sudo -u $USER_NAME akkoord keys add-recipient org.pub"
    step "install the device certificate the organisation made for it (docs/OPERATING.md, Provisioning)"
fi
if [ "$simulated" = 0 ]; then
    step "config.txt lines for the RTC, the serial console and audio: hardware/config.txt"
    step "reboot once after config.txt changes; then: systemctl status akkoord"
fi
if [ "$identity" = 0 ] && [ "$booted" = 1 ]; then
    step "start the recorder:  sudo systemctl start akkoord"
fi
exit 0
