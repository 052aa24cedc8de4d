#!/usr/bin/env bash
# `make bench` compares akkoord with `age` (the same ChaCha20-Poly1305 STREAM construction) on
# the same bytes. Install Debian's age when it is missing and we may; otherwise say so — the
# bench then reports that the peer is absent instead of failing.
set -uo pipefail
command -v age >/dev/null 2>&1 && exit 0
say() { printf 'akkoord bench: %s\n' "$*" >&2; }
if [ "$(id -u)" = 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    say "age is not installed and this user cannot install it (apt-get install age); no peer figures"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    say "age is not installed and there is no apt-get here; no peer figures"
    exit 0
fi
say "installing age (Debian) for the side-by-side figures"
"${sudo[@]}" apt-get update -qq || true
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends age >/dev/null \
    || say "apt-get install age failed; the bench reports without the peer"
exit 0
