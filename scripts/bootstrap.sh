#!/usr/bin/env bash
# Set up everything `make demo` / `make test` need on a fresh Debian or Raspberry Pi OS machine:
# Debian packages (only when missing), then a .venv with akkoord installed in editable mode.
#   scripts/bootstrap.sh          runtime (demo)
#   scripts/bootstrap.sh --test   runtime + test tools (pytest, hypothesis, headless Chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1
PYTHON=${PYTHON:-python3}

say() { printf 'akkoord setup: %s\n' "$*" >&2; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    say "no '$PYTHON' found. Install Python 3.11 or newer (Debian: apt-get install python3 python3-venv)."
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    say "$("$PYTHON" --version 2>&1) is too old: akkoord needs Python 3.11 or newer."
    exit 1
fi

# Debian packages: PyAudio compiles against PortAudio (PyPI has no Linux wheel).
pkgs=()
[ -f /usr/include/portaudio.h ] || pkgs+=(portaudio19-dev)
"$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 || pkgs+=(python3-venv)
command -v gcc >/dev/null 2>&1 || pkgs+=(gcc)
"$PYTHON" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || pkgs+=(python3-dev)
if [ "$want_test" = 1 ]; then
    command -v chromium >/dev/null 2>&1 || pkgs+=(chromium)
    command -v ffmpeg >/dev/null 2>&1 || pkgs+=(ffmpeg)  # the reference decoder (tests)
fi

if [ "${#pkgs[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        sudo=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        sudo=(none)
    fi
    if [ "${sudo[0]:-}" = none ]; then
        say "these Debian packages are missing: ${pkgs[*]}"
        say "install them as root, then run this again:  sudo apt-get install ${pkgs[*]}"
        exit 1
    fi
    say "installing Debian packages: ${pkgs[*]}"
    # A fresh machine has empty package lists until the first update.
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null \
        || { say "apt-get install ${pkgs[*]} failed (see above)"; exit 1; }
fi

extras=""
[ "$want_test" = 1 ] && extras="[test]"
stamp=".venv/.akkoord-installed${extras}"
digest=$(sha256sum pyproject.toml | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ] && [ -x .venv/bin/akkoord ]; then
    exit 0
fi
if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    "$PYTHON" -m venv .venv
fi
say "installing akkoord${extras} into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}" >.venv/pip.log 2>&1; then
    tail -n 30 .venv/pip.log >&2
    say "pip install failed; the full log is in .venv/pip.log"
    exit 1
fi
echo "$digest" > "$stamp"
