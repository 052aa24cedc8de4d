"""`make system-test`: the appliance end to end under a real systemd (PID 1 in a container).

1. A Debian bookworm minbase root made by debootstrap, cached under build/system-test/
   (keyed by the package list; ~2 min the first time, reused after).
2. A fresh copy of it per run, with this source tree at /srv/akkoord-src, the host's CA
   certificate for pip, and a oneshot unit (akkoord-systemtest.service -- test scaffolding,
   not the product) that runs tests/system/in_container.py and powers off.
3. An ext4 image file on a loop device, shown to the container as /dev/sdz1 (the stick).
4. Boot 1 (systemd-nspawn -b): the real installer, keys, the checks of phase 1.
   The host then mounts the stick image and verifies the copy with this tree's verifier.
5. Boot 2 (the reboot): recordings and the custody log are intact and verify; uninstall.

Prints one line per check; exit status 0 when all pass, 1 when one fails, 0 with "SKIP: why"
when this machine cannot boot a container (not root, no systemd-nspawn/debootstrap). Needs
the Debian mirror (the package registry) and PyPI.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rootfs import debootstrap  # tests/system/ is this script's folder

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build" / "system-test"
# Everything the installer would apt-get, preinstalled so a run needs the mirror only once.
PACKAGES = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-venv",
    "libportaudio2",
    "portaudio19-dev",
    "gcc",
    "python3-dev",
    "python3-pyaudio",
    "python3-gpiozero",
    "util-linux-extra",
    "passwd",
    "procps",
    "e2fsprogs",
]
BOOT_TIMEOUT = 1800


def say(msg: str) -> None:
    print(f"system-test: {msg}", flush=True)


def skip(why: str) -> int:
    print(f"SKIP: system-test: {why}", flush=True)
    return 0


def base_root() -> Path:
    key = hashlib.sha256(" ".join(PACKAGES).encode()).hexdigest()[:12]
    base = BUILD / f"base-bookworm-{key}"
    if (base / "usr/bin/systemctl").exists():
        return base
    return debootstrap(base, PACKAGES, say, "system-test")


def prepare(base: Path) -> Path:
    root = BUILD / "root"
    if root.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=True)
    subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(root)], check=True)
    src = root / "srv/akkoord-src"
    src.mkdir(parents=True)
    tar = subprocess.Popen(
        [
            "tar",
            "-C",
            str(REPO),
            "--exclude=./.venv",
            "--exclude=./build",
            "--exclude=./.git",
            "--exclude=*.egg-info",
            "--exclude=__pycache__",
            "--exclude=./demo-out",
            "-cf",
            "-",
            ".",
        ],
        stdout=subprocess.PIPE,
    )
    subprocess.run(["tar", "-C", str(src), "-xf", "-"], stdin=tar.stdout, check=True)
    tar.wait()
    here = root / "srv/akkoord-test"
    here.mkdir(parents=True)
    shutil.copy(REPO / "tests/system/in_container.py", here / "in_container.py")
    ca = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    if ca.is_file():
        shutil.copy(ca, here / "ca.crt")
    (root / "etc/hostname").write_text("akkoord-test\n")
    unit = root / "etc/systemd/system/akkoord-systemtest.service"
    unit.write_text(
        "# Test scaffolding for make system-test (not part of the product).\n"
        "[Unit]\nDescription=akkoord system test\nAfter=network.target\n"
        "[Service]\nType=oneshot\nStandardOutput=journal\n"
        "ExecStart=/usr/bin/python3 /srv/akkoord-test/in_container.py ${PHASE}\n"
        "EnvironmentFile=/srv/akkoord-test/phase.env\nTimeoutStartSec=infinity\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / unit.name).symlink_to(f"/etc/systemd/system/{unit.name}")
    return root


def boot(root: Path, phase: str, loop: str) -> dict[str, object]:
    (root / "srv/akkoord-test/phase.env").write_text(f"PHASE={phase}\n")
    t0 = time.monotonic()
    r = subprocess.run(
        [
            "systemd-nspawn",
            "-D",
            str(root),
            "-b",
            "--register=no",
            "--keep-unit",
            "--console=pipe",
            f"--bind={loop}:/dev/sdz1",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=BOOT_TIMEOUT,
        check=False,
    )
    say(f"boot {phase}: {time.monotonic() - t0:.0f} s (nspawn exit {r.returncode})")
    extra = []
    if phase == "1":  # the container asked for a reboot: systemd-nspawn exits with 133
        extra = [{"check": "boot 1 ends in a reboot of the container (nspawn exit 133)",
                  "ok": r.returncode == 133, "detail": f"exit {r.returncode}"}]
    path = root / f"srv/akkoord-test/results-{phase}.jsonl"
    if not path.exists():
        sys.stderr.write(r.stdout[-2000:] + r.stderr[-2000:])
        return {
            "checks": [
                {
                    "check": f"boot {phase} produced results",
                    "ok": False,
                    "detail": "no results file: the test unit did not run",
                }
            ]
        }
    return {"checks": [json.loads(line) for line in path.read_text().splitlines() if line] + extra}


def check_copy(root: Path, image: Path) -> list[dict[str, object]]:
    """Mount the stick image read-only on the host and verify the copy with this tree."""
    out = []
    rid = (root / "srv/akkoord-test/copied-recording").read_text().strip()
    device_pub = root / "var/lib/akkoord/keys/device.pub"
    with tempfile.TemporaryDirectory() as mnt:
        subprocess.run(["mount", "-o", "ro,loop,noexec,nodev,nosuid", str(image), mnt], check=True)
        try:
            copies = [p for p in (Path(mnt) / "akkoord").iterdir() if not p.name.startswith(".")]
            out.append(
                {
                    "check": "the stick holds one finished copy (no .partial)",
                    "ok": len(copies) == 1,
                    "detail": [p.name for p in (Path(mnt) / "akkoord").iterdir()],
                }
            )
            if copies:
                argv = [sys.executable, "-m", "akkoord", "verify", str(copies[0]), "--json"]
                if device_pub.exists():
                    argv += ["--device-key", str(device_pub)]
                r = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
                out.append(
                    {
                        "check": f"the copy of {rid[:8]} verifies on the host",
                        "ok": r.returncode in (0, 3),
                        "detail": f"exit {r.returncode}: {r.stdout[-800:]}{r.stderr[-800:]}",
                    }
                )
        finally:
            subprocess.run(["umount", mnt], check=False)
    return out


def main() -> int:
    if os.geteuid() != 0:
        return skip("needs root (systemd-nspawn, loop devices)")
    wanted = {"systemd-nspawn": "systemd-container", "debootstrap": "debootstrap",
              "mkfs.ext4": "e2fsprogs"}
    missing = [pkg for tool, pkg in wanted.items() if shutil.which(tool) is None]
    if missing:  # a fresh CI machine: the Debian packages, as scripts/bootstrap.sh does
        say(f"installing Debian packages: {' '.join(missing)}")
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                       check=False, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    for tool in ("systemd-nspawn", "debootstrap", "losetup", "mkfs.ext4"):
        if shutil.which(tool) is None:
            return skip(
                f"{tool} is not installed (Debian: systemd-container, debootstrap, "
                "util-linux, e2fsprogs)"
            )
    BUILD.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    root = prepare(base_root())
    probe = subprocess.run(["systemd-nspawn", "-D", str(root), "--register=no", "--keep-unit",
                            "--quiet", "/bin/true"], capture_output=True, text=True, timeout=120,
                           check=False)  # fmt: skip
    if probe.returncode:
        return skip(f"systemd-nspawn cannot run a container here: {probe.stderr.strip()[-300:]}")
    image = BUILD / "stick.img"
    image.unlink(missing_ok=True)
    subprocess.run(["truncate", "-s", "32M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "STICK", str(image)], check=True)
    loop = subprocess.run(
        ["losetup", "-f", "--show", str(image)], capture_output=True, text=True, check=True
    ).stdout.strip()
    checks: list[dict[str, object]] = []
    try:
        checks += boot(root, "1", loop)["checks"]  # type: ignore[operator]
        if (root / "srv/akkoord-test/copied-recording").exists():
            subprocess.run(["losetup", "-d", loop], check=False)
            checks += check_copy(root, image)
            loop = subprocess.run(
                ["losetup", "-f", "--show", str(image)], capture_output=True, text=True, check=True
            ).stdout.strip()
        if any(c["check"] == "phase 1 ran to the end" and c["ok"] for c in checks):
            checks += boot(root, "2", loop)["checks"]  # type: ignore[operator]
        else:
            checks.append({"check": "boot 2 (the reboot)", "ok": False,
                           "detail": "not run: phase 1 did not run to the end"})
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)
    failed = [c for c in checks if not c["ok"]]
    for c in checks:
        print(f"{'PASS' if c['ok'] else 'FAIL'}  {c['check']}")
        if not c["ok"]:
            print(f"      {json.dumps(c.get('detail'), ensure_ascii=False)[:1500]}")
    say(
        f"{len(checks) - len(failed)}/{len(checks)} checks passed "
        f"in {time.monotonic() - t0:.0f} s; journals in {root}/srv/akkoord-test/"
    )
    return 1 if failed or not checks else 0


if __name__ == "__main__":
    sys.exit(main())
