"""The Debian bookworm root both proofs start from: made once with debootstrap, cached.

Shared by `make system-test` (run.py, the host's architecture, booted with systemd-nspawn) and
`make pi-smoke` (pi_smoke.py, arm64 under qemu-user). A root is built in `<base>.tmp` and
renamed into place only when debootstrap succeeded, so an interrupted build never counts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

MIRROR = os.environ.get("AKKOORD_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def debootstrap(base: Path, packages: list[str], say: Callable[[str], None], who: str,
                arch: str | None = None) -> Path:
    """Build `base` (minbase + `packages`); `who` names the proof in a failure."""
    tmp = base.with_name(base.name + ".tmp")
    subprocess.run(["rm", "-rf", "--one-file-system", str(tmp)], check=True)
    what = f"bookworm {arch}" if arch else "bookworm"
    say(f"debootstrap {what} (minbase + {len(packages)} packages) into {base} ...")
    t0 = time.monotonic()
    r = subprocess.run(
        ["debootstrap", *([f"--arch={arch}"] if arch else []), "--variant=minbase",
         f"--include={','.join(packages)}", "bookworm", str(tmp), MIRROR],
        capture_output=True, text=True, check=False,
    )
    if r.returncode:
        sys.stderr.write(r.stdout[-3000:] + r.stderr[-3000:])
        raise SystemExit(f"{who}: debootstrap failed (exit {r.returncode})")
    tmp.rename(base)
    say(f"debootstrap took {time.monotonic() - t0:.0f} s")
    return base
