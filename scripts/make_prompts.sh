#!/usr/bin/env bash
# Render the spoken prompts into device/akkoord/assets/prompts/<language>/<id>.wav.
#
# Needs: espeak-ng (with its Dutch voice; Debian package espeak-ng), sox (Debian package sox),
# and Python 3.11+ able to import akkoord (the .venv, or PYTHONPATH=device). The sentences
# come from device/akkoord/prompts.py (TEXTS), the single source for text and file names.
#
# Output: 16 kHz, mono, 16-bit PCM WAV (small; speech needs no more), peak-normalised to
# -1 dBFS, espeak-ng's own leading/trailing silence trimmed, then 50 ms in front and 150 ms
# behind so a player never clips the edges.
# Reproducible: no dither (-D) and sox's repeatable mode (-R), so the same espeak-ng and sox
# versions give byte-identical files; the versions used are printed for the commit message.
#
#   scripts/make_prompts.sh            render all prompts
#   SPEED=150 scripts/make_prompts.sh  words per minute (default 150: slow and clear)
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "make_prompts: '$tool' not found; install it (Debian: apt-get install $tool)" >&2
        exit 1
    }
done
if ! espeak-ng --voices=nl | grep -q ' nl '; then
    echo "make_prompts: espeak-ng has no Dutch (nl) voice" >&2
    exit 1
fi

if [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
else
    PY=${PYTHON:-python3}
fi
SPEED=${SPEED:-150}
out=device/akkoord/assets/prompts
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "make_prompts: $(espeak-ng --version | head -n1)" >&2
echo "make_prompts: $(sox --version)" >&2

# Tab-separated "language id text" lines from the package itself.
PYTHONPATH=device${PYTHONPATH:+:$PYTHONPATH} "$PY" -m akkoord.prompts >"$tmp/list.tsv"

count=0
while IFS=$'\t' read -r lang id text; do
    mkdir -p "$out/$lang"
    # Voice "en" is espeak-ng's British English; "nl" its Dutch voice.
    espeak-ng -v "$lang" -s "$SPEED" -w "$tmp/raw.wav" -- "$text"
    sox -R -D "$tmp/raw.wav" -r 16000 -c 1 -b 16 -e signed-integer "$out/$lang/$id.wav" \
        silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse gain -n -1 pad 0.05 0.15
    count=$((count + 1))
done <"$tmp/list.tsv"
echo "make_prompts: wrote $count files under $out" >&2
