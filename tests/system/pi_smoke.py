"""`make pi-smoke`: the installer, the test vectors and a simulated ceremony on arm64.

The Pi's architecture under emulation (qemu-user-static through binfmt_misc), in a chroot of
Debian bookworm arm64 made by debootstrap and cached under build/pi-smoke/:

1. `systemd/install.sh --packages pypi --no-start` in the chroot (systemd is not running
   there: the units are enabled offline). lgpio must come in as the aarch64 wheel (the
   pyproject environment marker), PyAudio compiled against PortAudio.
2. Every test vector (tests/vectors/*/recording and copy) verified by the installed program;
   the JSON verdicts must equal the host's, byte for byte after the path prefix.
3. A simulated ceremony with the installed program (`akkoord run --simulate` with a WAV
   microphone): keys, both presses, a stop, both presses for a copy into a folder; the copy
   and the recording verify.

Not part of `make test`. Time on this shared 2-core machine: 22 min the first time
(debootstrap's emulated second stage 14 min, the installer 7 min), about 8 min after that
(mostly pip and compiling PyAudio under emulation). Prints "SKIP: why" when it cannot run
(not root, no qemu-user-static or binfmt_misc). Chromium is not involved (it does not run
under qemu-user).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rootfs import debootstrap  # tests/system/ is this script's folder

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build" / "pi-smoke"
PACKAGES = [
    "python3",
    "python3-venv",
    "libportaudio2",
    "portaudio19-dev",
    "gcc",
    "python3-dev",
    "systemd",
    "passwd",
    "udev",
]
CEREMONY = """sleep 0.5
a
sleep 1
b
sleep 3
a
sleep 1
usb {stick}
sleep 1
a
b
sleep 6
usb-remove
quit
"""


def say(msg: str) -> None:
    print(f"pi-smoke: {msg}", flush=True)


def binfmt_ready() -> str | None:
    """None when arm64 binaries run here, else why not."""
    if shutil.which("qemu-aarch64-static") is None:
        return "qemu-user-static is not installed (Debian: qemu-user-static binfmt-support)"
    entry = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    if not entry.exists():
        if not Path("/proc/sys/fs/binfmt_misc/status").exists():
            subprocess.run(
                ["mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"],
                check=False,
            )
        if shutil.which("update-binfmts"):
            subprocess.run(
                ["update-binfmts", "--enable", "qemu-aarch64"], check=False, capture_output=True
            )
    if not entry.exists() or "enabled" not in entry.read_text():
        return "binfmt_misc has no enabled qemu-aarch64 entry"
    return None


def base_root() -> Path:
    base = BUILD / "base-bookworm-arm64"
    if (base / "usr/bin/python3").exists():
        return base
    return debootstrap(base, PACKAGES, say, "pi-smoke", arch="arm64")


class Chroot:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.mounts: list[Path] = []

    def __enter__(self) -> Chroot:
        for src, fstype in (
            ("/proc", "proc"),
            ("/sys", "sysfs"),
            ("/dev", None),
            ("/dev/pts", None),
        ):
            dst = self.root / src.lstrip("/")
            dst.mkdir(parents=True, exist_ok=True)
            argv = (
                ["mount", "--bind", src, str(dst)]
                if fstype is None
                else ["mount", "-t", fstype, fstype, str(dst)]
            )
            subprocess.run(argv, check=True)
            self.mounts.append(dst)
        return self

    def __exit__(self, *exc: object) -> None:
        for dst in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(dst)], check=False)

    def run(
        self,
        *argv: str,
        timeout: float = 1800,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "PIP_CERT": "/srv/ca.crt",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_DEFAULT_TIMEOUT": "180",
        }
        return subprocess.run(
            ["chroot", str(self.root), *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            input=stdin,
            check=False,
        )


def normalised(doc: object, prefix: str) -> str:
    return json.dumps(doc, sort_keys=True).replace(prefix, "<VECTORS>")


def main() -> int:
    if os.geteuid() != 0:
        print("SKIP: pi-smoke: needs root (chroot, mounts)")
        return 0
    for tool in ("debootstrap", "chroot"):
        if shutil.which(tool) is None:
            print(f"SKIP: pi-smoke: {tool} is not installed")
            return 0
    why = binfmt_ready()
    if why:
        print(f"SKIP: pi-smoke: {why}")
        return 0
    t0 = time.monotonic()
    BUILD.mkdir(parents=True, exist_ok=True)
    base = base_root()
    root = BUILD / "root"
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
            "--exclude=__pycache__",
            "-cf",
            "-",
            ".",
        ],
        stdout=subprocess.PIPE,
    )
    subprocess.run(["tar", "-C", str(src), "-xf", "-"], stdin=tar.stdout, check=True)
    tar.wait()
    ca = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    if ca.is_file():
        shutil.copy(ca, root / "srv/ca.crt")
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    checks: list[tuple[str, bool, str]] = []

    def check(name: str, ok: bool, detail: str = "") -> bool:
        checks.append((name, ok, detail))
        print(f"{'PASS' if ok else 'FAIL'}  {name}", flush=True)
        if not ok:
            print("      " + detail[-2500:].replace("\n", "\n      "), flush=True)
        return ok

    with Chroot(root) as ch:
        r = ch.run("uname", "-m")
        check("the chroot runs arm64 code", r.stdout.strip() == "aarch64", r.stdout + r.stderr)
        t1 = time.monotonic()
        r = ch.run("/srv/akkoord-src/systemd/install.sh", "--packages", "pypi", "--no-start")
        check(
            f"installer (PyPI path) in {time.monotonic() - t1:.0f} s",
            r.returncode == 0,
            r.stdout + r.stderr,
        )
        exe = "/opt/akkoord/current/bin/akkoord"
        py = "/opt/akkoord/current/bin/python"
        r = ch.run(py, "-c", "import lgpio, platform; print(platform.machine(), lgpio.__file__)")
        check(
            "lgpio is the aarch64 wheel (environment marker)",
            r.returncode == 0 and "aarch64" in r.stdout and "/opt/akkoord/" in r.stdout,
            r.stdout + r.stderr,
        )
        r = ch.run("systemctl", "--root=/", "is-enabled", "akkoord.service")
        check("akkoord.service enabled offline", r.stdout.strip() == "enabled", r.stdout + r.stderr)
        r = ch.run("id", "-nG", "akkoord")
        check(
            "user akkoord in audio and gpio", {"audio", "gpio"} <= set(r.stdout.split()), r.stdout
        )

        vectors = REPO / "tests" / "vectors"
        inner = "/srv/akkoord-src/tests/vectors"
        for case in sorted(p.name for p in vectors.iterdir() if (p / "recording").is_dir()):
            for what, extra in (("recording", ["--key", "org.key"]), ("copy", [])):
                args = ["verify", f"{case}/{what}", "--json", "--device-key", "device.pub", *extra]
                host = subprocess.run(
                    [sys.executable, "-m", "akkoord", *args],
                    cwd=vectors,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                arm = ch.run("sh", "-c", f"cd {inner} && {exe} " + " ".join(args))
                same = arm.returncode == host.returncode and normalised(
                    json.loads(arm.stdout or "null"), inner
                ) == normalised(json.loads(host.stdout or "null"), str(vectors))
                check(
                    f"vector {case}/{what}: arm64 verdict = host verdict (exit {arm.returncode})",
                    same,
                    arm.stdout[-800:] + arm.stderr[-800:],
                )

        state, stick = "/srv/ceremony/state", "/srv/ceremony/stick"
        (root / stick.lstrip("/")).mkdir(parents=True)
        for argv in (["keys", "init"], ["keys", "org-new", "--out", "/srv/ceremony/org"]):
            r = ch.run(exe, "--state", state, *argv)
            check(f"akkoord {' '.join(argv[:2])}", r.returncode == 0, r.stdout + r.stderr)
        pub = next(p for p in (root / "srv/ceremony/org").glob("*.pub") if "sign" not in p.name)
        r = ch.run(exe, "--state", state, "keys", "add-recipient", f"/srv/ceremony/org/{pub.name}")
        check("akkoord keys add-recipient", r.returncode == 0, r.stdout + r.stderr)
        ch.run(exe, "simulate-microphone", "/srv/ceremony/mic.wav", "--seconds", "10")
        t1 = time.monotonic()
        r = ch.run(
            exe,
            "--state",
            state,
            "run",
            "--simulate",
            "--json",
            "--audio-file",
            "/srv/ceremony/mic.wav",
            stdin=CEREMONY.format(stick=stick),
            timeout=600,
        )
        events = [
            json.loads(line)["event"] for line in r.stdout.splitlines() if line.startswith("{")
        ]
        check(
            f"simulated ceremony under emulation ({time.monotonic() - t1:.0f} s): "
            "recording started, stopped, copy made",
            r.returncode == 0
            and {"recording_started", "recording_stopped", "copy_made"} <= set(events),
            r.stdout[-2000:] + r.stderr[-1500:],
        )
        copies = [
            p.name for p in (root / stick.lstrip("/")).iterdir() if not p.name.startswith(".")
        ]
        recs = sorted((root / state.lstrip("/") / "recordings").iterdir())
        if copies and recs:
            r = ch.run(exe, "--state", state, "verify", f"{stick}/{copies[0]}")
            check("the copy verifies on arm64", r.returncode in (0, 3), r.stdout[-800:] + r.stderr)
            r = ch.run(exe, "--state", state, "verify", f"{state}/recordings/{recs[0].name}")
            check(
                "the recording verifies on arm64",
                r.returncode in (0, 3),
                r.stdout[-800:] + r.stderr,
            )
        else:
            check("a copy and a recording exist", False, f"copies={copies} recordings={recs}")

    failed = [c for c in checks if not c[1]]
    say(f"{len(checks) - len(failed)}/{len(checks)} checks passed in {time.monotonic() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
