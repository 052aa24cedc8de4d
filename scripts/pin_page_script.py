#!/usr/bin/env python3
"""Re-pin verify.html's inline script in its Content-Security-Policy after an edit.

    .venv/bin/python scripts/pin_page_script.py [device/akkoord/assets/verify.html]
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pin(path: Path) -> str:
    html = path.read_text("utf-8")
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    if len(scripts) != 1:
        raise SystemExit(f"{path}: expected exactly one inline script, found {len(scripts)}")
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    new = re.sub(r"script-src 'sha256-[A-Za-z0-9+/=]+'", f"script-src 'sha256-{digest}'", html)
    path.write_text(new, "utf-8")
    return digest


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "device/akkoord/assets/verify.html"
    print(pin(target))
