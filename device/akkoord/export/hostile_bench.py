"""`akkoord bench`: how fast and how small the copy verifier refuses a hostile copy.

Issue 8 §5: an unsigned manifest claiming 10,000 segments with a sparse multi-GB WAV must be
refused in under a second and under 64 MB. Measured in a fresh process (VmHWM), never in a
timed test; tests/test_copy_attacks.py checks the structural bound (almost nothing read).
"""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from akkoord.store.format import MANIFEST_FORMAT, canonical_json
from akkoord.store.keys import DeviceIdentity

__all__ = ["hostile_copy_figures"]

_CHILD = """
import json, sys
from pathlib import Path
from akkoord.export.copycheck import verify_copy
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
import time
t0 = time.perf_counter()
rep = verify_copy(Path(sys.argv[1]))
print(json.dumps({"status": rep.status, "rss_kb": hwm(), "s": time.perf_counter() - t0}))
"""


def _hostile_copy(folder: Path, segments: int = 10_000, seg: int = 100_000) -> None:
    from akkoord.export.copycheck import COPY_FORMAT

    folder.mkdir(parents=True)
    key = DeviceIdentity.generate()
    rid = os.urandom(16).hex()
    manifest = {
        "format": MANIFEST_FORMAT, "recording_id": rid, "status": "complete",
        "device": {"algorithm": "ed25519", "fingerprint": key.fingerprint,
                   "public_key": base64.b64encode(key.public.raw).decode()},
        "audio": {"encoding": "pcm_s16le", "sample_rate": 48000, "channels": 1,
                  "sample_width": 2, "segment_samples": seg},
        "duration_samples": segments * seg, "duration_seconds": segments * seg / 48000,
        "segments": [[i + 1, i * seg, seg, "ab" * 32] for i in range(segments)],
        "gaps": [], "timeline": [],
    }
    (folder / "manifest.json").write_bytes(canonical_json(manifest) + b"\n")
    (folder / "manifest.sig").write_bytes(base64.b64encode(bytes(64)) + b"\n")  # unsigned
    (folder / "copy.json").write_bytes(canonical_json({
        "format": COPY_FORMAT, "recording_id": rid, "copy_number": 1, "made_by": "device",
        "audio_file": "opname.wav", "audio_mac_key": base64.b64encode(bytes(32)).decode()}))
    data_len = segments * seg * 2
    with open(folder / "opname.wav", "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 36 + data_len) + b"WAVE" + b"fmt "
                + struct.pack("<IHHIIHH", 16, 1, 1, 48000, 96000, 2, 16)
                + b"data" + struct.pack("<I", data_len))
        f.truncate(44 + data_len)  # sparse: gigabytes that cost nothing on disk


def hostile_copy_figures(root: Path) -> dict[str, Any]:
    folder = root / "hostile-copy"
    _hostile_copy(folder)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _CHILD, str(folder)], check=True,
                         capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    doc = json.loads(out.stdout)
    return {
        "hostile_copy_wav_gb": round((folder / "opname.wav").stat().st_size / 1e9, 1),
        "hostile_copy_status": doc["status"],
        "hostile_copy_refusal_s": round(doc["s"], 3),
        "hostile_copy_process_s": round(elapsed, 3),  # with starting Python and imports
        "hostile_copy_peak_rss_mb": round(doc["rss_kb"] / 1024, 1),
    }
