#!/usr/bin/env bash
# Make the bundled demo conversation (Dutch, two synthetic voices) used by `make demo`:
#   device/akkoord/assets/demo/gesprek.wav  (16 kHz, mono, 16-bit)
# Needs Debian's espeak-ng and sox. The result is committed; run this only to change it.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install $tool)" >&2; exit 1; }
done
out=device/akkoord/assets/demo/gesprek.wav
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
say() {  # voice, sentence
    n=$((n + 1))
    espeak-ng -v "$1" -s 170 -w "$tmp/raw$n.wav" "$2"
    sox "$tmp/raw$n.wav" -r 16000 -c 1 -b 16 "$tmp/part$n.wav" pad 0 0.3
}
# A: the youth-care professional; B: the parent.
say nl+m3 "Goedemorgen. Zullen we dit gesprek opnemen, zodat we allebei weten wat er is gezegd?"
say nl+f3 "Ja, graag. Dan kan ik het thuis nog eens rustig terugluisteren."
say nl+m3 "Afgesproken. We bespreken het plan voor de komende maanden."
say nl+f3 "Ik wil graag dat mijn zoon vaker bij zijn opa mag logeren."
sox $(for i in $(seq 1 $n); do echo "$tmp/part$i.wav"; done) "$out"
soxi -d "$out"
