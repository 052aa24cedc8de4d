"""No content, seal or MAC key stays in the daemon after the export window (issue 8 §5).

A real simulated daemon records, makes a copy, lets the export window close; then this
test reads the daemon's memory through /proc/PID/mem and searches every readable mapping
for the three keys (recovered with the organisation key from keys.json, as only the
organisation could). The daemon is still running, so nothing was freed by an exit.
What this cannot see — copies the kernel, a swapped page or a library's freed heap made
and a later allocation overwrote — THREAT-MODEL.md lists.
"""

from __future__ import annotations

import re

from akkoord.store.keys import ContentKeys, OrgPrivateKey
from akkoord.store.verify import load_content_keys
from simkit import DEMO_WAV, Sim, provision, write_config

CONFIG = """
[audio]
sample_rate = 16000
[export]
window_seconds = {window}
"""

_MAPS = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (r...) \S+ \S+ \S+\s*(.*)$")


def _memory(pid: int) -> list[bytes]:
    regions = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            m = _MAPS.match(line.strip())
            if not m or m.group(4) in ("[vvar]", "[vsyscall]", "[vvar_vclock]"):
                continue
            start, end = int(m.group(1), 16), int(m.group(2), 16)
            try:
                mem.seek(start)
                regions.append(mem.read(end - start))
            except (OSError, ValueError, OverflowError):
                continue
    return regions


def _content_key(rec, org: OrgPrivateKey) -> bytes:
    import json

    from akkoord.store.keys import unwrap_content_key

    doc = json.loads((rec / "keys.json").read_bytes())
    return unwrap_content_key(doc["recipients"], bytes.fromhex(doc["recording_id"]), org, "t")


def _found(regions: list[bytes], secrets: dict[str, bytes]) -> list[str]:
    return [name for name, value in secrets.items() if any(value in r for r in regions)]


def test_no_key_is_left_in_the_daemon_after_the_export_window(tmp_path):
    state, key_file = provision(tmp_path)
    org = OrgPrivateKey.load(key_file)
    cfg = write_config(tmp_path / "c.toml", CONFIG.format(window=6))
    stick = tmp_path / "stick"
    stick.mkdir()
    sim = Sim(state, "--config", str(cfg), "--audio-file", str(DEMO_WAV))
    try:
        sim.wait_for("ready")
        sim.send("a", "b")
        started = sim.wait_for("recording_started")
        sim.send("sleep 1.2", "b")
        sim.wait_for("recording_stopped")
        sim.send("sleep 0.8", f"usb {stick}")
        sim.wait_for("state", state="copy_confirm")
        sim.send("a", "b")
        sim.wait_for("copy_made", timeout=30)
        rec = state.recording_dir(started["recording_id"])
        keys: ContentKeys = load_content_keys(rec, org)
        secrets = {
            "content key": _content_key(rec, org),
            "seal key": bytes(keys.seal_key),
            "audio-MAC key": bytes(keys.mac_key),
        }
        # The probe must be able to see a key at all: within the window it is there.
        assert "seal key" in _found(_memory(sim.proc.pid), secrets)
        sim.wait_for("keys_dropped", timeout=15)
        sim.send("sleep 0.5")
        assert sim.proc.poll() is None
        leftover = _found(_memory(sim.proc.pid), secrets)
        assert leftover == [], f"{leftover} still in the daemon's memory"
    finally:
        sim.send("quit")
        sim.finish()
        sim.kill()
