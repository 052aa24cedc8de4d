"""The system test's half that runs inside the booted container (systemd is PID 1).

Started by akkoord-systemtest.service (a oneshot the host puts into the root, not part of the
product) as `python3 in_container.py PHASE`; writes one JSON line per check to
/srv/akkoord-test/results-PHASE.jsonl and powers the container off. Only the standard library:
phase 1 begins before akkoord is installed.

Phase 1 (first boot): install (distribution packages), keys, start; READY/STATUS and the user;
watchdog on a frozen daemon; `systemctl stop` seals; a stick gets a copy; the clock helper
answers; upgrade with the PyPI path. Phase 2 (second boot): everything is still there and
verifies; uninstall keeps the recordings; --purge removes them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path("/srv/akkoord-test")
SRC = Path("/srv/akkoord-src")
STATE = Path("/var/lib/akkoord")
EXE = "/opt/akkoord/current/bin/akkoord"
STICK = "sdz1"
MOUNT = Path("/run/akkoord/sticks") / STICK
ENV = {
    **os.environ,
    "PIP_CERT": "/srv/akkoord-test/ca.crt",
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
}

results = None


def record(name: str, ok: bool, detail: object = "") -> bool:
    line = {
        "check": name,
        "ok": bool(ok),
        "detail": detail if isinstance(detail, (dict, list)) else str(detail)[-2000:],
    }
    results.write(json.dumps(line) + "\n")
    results.flush()
    return ok


def sh(
    *argv: str, timeout: float = 120, check: bool = False, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    if user:
        argv = ("runuser", "-u", user, "--", *argv)
    r = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, env=ENV, check=False
    )
    if check and r.returncode:
        raise RuntimeError(
            f"{' '.join(argv)} -> {r.returncode}: {r.stderr[-1500:]}{r.stdout[-500:]}"
        )
    return r


def show(unit: str, prop: str) -> str:
    return sh("systemctl", "show", "-p", prop, "--value", unit).stdout.strip()


def wait_for(what: str, test, timeout: float = 60, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = test()
        if value:
            return value
        time.sleep(poll)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


def journal(unit: str = "akkoord") -> str:
    return sh("journalctl", "-u", unit, "--no-pager", "-o", "cat").stdout


def manifest(rid: str) -> dict:
    code = (
        "import json,sys; from pathlib import Path; "
        "from akkoord.store.manifest import read_manifest; "
        "m = read_manifest(Path(sys.argv[1])); print(json.dumps(m.doc if m else None))"
    )
    r = sh(
        "/opt/akkoord/current/bin/python", "-c", code, str(STATE / "recordings" / rid), check=True
    )
    return json.loads(r.stdout) or {}


def recordings() -> list[str]:
    d = STATE / "recordings"
    return sorted(p.name for p in d.iterdir() if len(p.name) == 32) if d.is_dir() else []


def verify(path: Path) -> tuple[bool, str]:
    r = sh(EXE, "verify", str(path), "--json")
    # 0: genuine and anchored; 3 (trust design): genuine, not anchored to an organisation key.
    return r.returncode in (0, 3), f"exit {r.returncode}: {r.stdout[-600:]}{r.stderr[-600:]}"


def status() -> str:
    return show("akkoord", "StatusText")


def start_recording() -> str:
    before = set(recordings())
    sh(EXE, "simulate", "a", check=True)
    sh(EXE, "simulate", "b", check=True)
    new = wait_for("a new recording", lambda: sorted(set(recordings()) - before), 30)
    wait_for("STATUS= recording", lambda: status().startswith("recording"), 30)
    return new[0]


def main_pid() -> int:
    return int(show("akkoord", "MainPID") or 0)


# --- phase 1 ----------------------------------------------------------------------------------


def phase1() -> None:
    r = sh(str(SRC / "systemd/install.sh"), "--simulated", "--packages", "distro", timeout=1200)
    record("install (distribution packages) succeeds", r.returncode == 0, r.stdout + r.stderr)
    if r.returncode:
        raise RuntimeError("the installer failed; nothing else can be checked")
    (HERE / "install-output.txt").write_text(r.stdout + r.stderr)
    r = sh(
        "/opt/akkoord/current/bin/python", "-c", "import pyaudio, gpiozero; print(pyaudio.__file__)"
    )
    record(
        "distro path: PyAudio is the distribution's (venv with system site packages)",
        r.stdout.startswith("/usr/lib/python3/dist-packages/"),
        r.stdout + r.stderr,
    )
    record(
        "installer says what is left (keys init, organisation key, certificate)",
        all(s in (HERE / "install-output.txt").read_text()
            for s in ("keys init", "add-recipient", "certificate")),
        "",
    )
    record(
        "akkoord.service enabled",
        show("akkoord", "UnitFileState") == "enabled",
        show("akkoord", "UnitFileState"),
    )

    sh(EXE, "keys", "init", user="akkoord", check=True)
    org = Path("/root/org")
    sh(EXE, "keys", "org-new", "--out", str(org), check=True)
    pub = sorted(org.glob("*.pub"))
    recipient = next((p for p in pub if "sign" not in p.name), pub[0])
    tmp = Path("/tmp/org.pub")
    tmp.write_bytes(recipient.read_bytes())
    tmp.chmod(0o644)
    sh(EXE, "keys", "add-recipient", str(tmp), user="akkoord", check=True)

    r = sh("systemctl", "start", "akkoord", timeout=300)
    record(
        "akkoord.service starts (Type=notify: READY=1)",
        r.returncode == 0 and show("akkoord", "ActiveState") == "active",
        r.stderr + journal()[-1500:],
    )
    record(
        "STATUS= shows the state",
        status().startswith("ready") or status().startswith("idle"),
        status(),
    )
    pid = main_pid()
    st = Path(f"/proc/{pid}/status").read_text()
    uid = next(line.split()[1] for line in st.splitlines() if line.startswith("Uid:"))
    cap = next(line.split()[1] for line in st.splitlines() if line.startswith("CapEff:"))
    record(
        "daemon runs as the unprivileged user, no capabilities",
        uid == sh("id", "-u", "akkoord").stdout.strip() and int(cap, 16) == 0,
        f"uid={uid} CapEff={cap}",
    )
    groups = sh("id", "-Gn", "akkoord").stdout.split()
    record("user akkoord is in audio and gpio", {"audio", "gpio"} <= set(groups), groups)

    # Watchdog: freeze the daemon mid-recording.
    rid1 = start_recording()
    time.sleep(3)
    restarts = int(show("akkoord", "NRestarts") or 0)
    os.kill(pid, 19)  # SIGSTOP
    t0 = time.monotonic()
    wait_for(
        "a restart after the watchdog",
        lambda: (
            int(show("akkoord", "NRestarts") or 0) > restarts
            and show("akkoord", "ActiveState") == "active"
            and main_pid() not in (0, pid)
        ),
        90,
    )
    record(
        "watchdog kills the frozen daemon and systemd restarts it",
        "Watchdog timeout" in sh("journalctl", "-u", "akkoord", "--no-pager").stdout,
        f"restarted after {time.monotonic() - t0:.0f} s",
    )
    m = manifest(rid1)
    record(
        "the frozen recording is recovered as interrupted",
        m.get("status") == "interrupted",
        m.get("interruption"),
    )
    ok, detail = verify(STATE / "recordings" / rid1)
    record("the interrupted recording verifies", ok, detail)

    # systemctl stop seals.
    rid2 = start_recording()
    time.sleep(2)
    r = sh("systemctl", "stop", "akkoord", timeout=60)
    m = manifest(rid2)
    record(
        "systemctl stop seals the recording (reason shutdown)",
        m.get("status") == "complete" and (m.get("stop") or {}).get("reason") == "shutdown",
        m.get("stop"),
    )
    ok, detail = verify(STATE / "recordings" / rid2)
    record("the recording sealed at shutdown verifies", ok, detail)
    sh("systemctl", "start", "akkoord", timeout=300, check=True)

    # A copy on a stick.
    rid3 = start_recording()
    time.sleep(2)
    sh(EXE, "simulate", "a", check=True)
    wait_for("the recording to stop", lambda: manifest(rid3).get("status") == "complete", 30)
    (HERE / "copied-recording").write_text(rid3)
    r = sh("systemctl", "start", f"akkoord-stick@{STICK}.service", timeout=90)
    mounts = Path("/proc/self/mounts").read_text()
    line = next((ln for ln in mounts.splitlines() if ln.split()[1] == str(MOUNT)), "")
    opts = set(line.split()[3].split(",")) if line else set()
    record(
        "the stick unit mounts the stick nosuid,nodev,noexec",
        r.returncode == 0 and {"nosuid", "nodev", "noexec"} <= opts,
        line + r.stderr + journal(f"akkoord-stick@{STICK}")[-800:],
    )
    folder = MOUNT / "akkoord"
    record(
        "ext4 stick: the recorder's folder belongs to the recorder",
        folder.is_dir() and folder.stat().st_uid == int(sh("id", "-u", "akkoord").stdout),
        "",
    )
    wait_for("the copy offer", lambda: status().startswith("copy_confirm"), 20)
    sh(EXE, "simulate", "a", check=True)
    sh(EXE, "simulate", "b", check=True)
    made = wait_for(
        "copy_made", lambda: "copy_made" in journal() or "copy_failed" in journal(), 120
    )
    record("both presses make a copy", "copy_made" in journal(), journal()[-1500:] if made else "")
    wait_for("the eject", lambda: str(MOUNT) not in Path("/proc/self/mounts").read_text(), 30)
    record(
        "after the copy the stick is unmounted (eject helper)",
        True,
        journal("akkoord-eject")[-500:],
    )
    sh("systemctl", "stop", f"akkoord-stick@{STICK}.service", timeout=60)
    # Plug it in again and pull it without a copy: removal unmounts.
    r = sh("systemctl", "start", f"akkoord-stick@{STICK}.service", timeout=90)
    was = str(MOUNT) in Path("/proc/self/mounts").read_text()
    sh("systemctl", "stop", f"akkoord-stick@{STICK}.service", timeout=60)
    now = str(MOUNT) in Path("/proc/self/mounts").read_text()
    record(
        "removing the stick (unit stopped) unmounts it",
        was and not now,
        f"mounted before: {was}, after: {now}",
    )

    # The clock helper: the narrow path answers; a bad request is refused by the root side.
    req = Path("/run/akkoord/requests")
    r = sh(EXE, "clock-set-request", "2031-02-03T04:05:06Z", user="akkoord", timeout=60)
    answer = r.stdout + r.stderr
    # nspawn withholds CAP_SYS_TIME from the container: the helper answers with the kernel's
    # refusal there; on a device it sets the clock.
    record(
        "clock request reaches the root helper (which sets it, or reports the kernel's EPERM)",
        r.returncode == 0 or ("not set" in answer and "Operation not permitted" in answer),
        answer,
    )
    (req / "clock").write_text("1970-01-01T00:00:00Z; rm -rf /\n")
    res = wait_for(
        "clock.result", lambda: (req / "clock.result").exists() and not (req / "clock").exists(), 20
    )
    doc = json.loads((req / "clock.result").read_text()) if res else {}
    record("a malformed clock request is refused by the root helper", doc.get("ok") is False, doc)

    # Upgrade with the PyPI path; everything is kept.
    keys_before = (STATE / "keys" / "device.pub").read_bytes()
    recs_before = recordings()
    r = sh(str(SRC / "systemd/install.sh"), "--simulated", "--packages", "pypi", timeout=1500)
    record(
        "re-run (upgrade, PyPI packages) succeeds", r.returncode == 0, (r.stdout + r.stderr)[-2000:]
    )
    r2 = sh("/opt/akkoord/current/bin/python", "-c", "import pyaudio; print(pyaudio.__file__)")
    record(
        "pypi path: PyAudio is the venv's own",
        r2.stdout.startswith("/opt/akkoord/"),
        r2.stdout + r2.stderr,
    )
    record(
        "upgrade keeps keys and recordings",
        (STATE / "keys" / "device.pub").read_bytes() == keys_before and recordings() == recs_before,
        "",
    )
    record("upgrade restarts the service", show("akkoord", "ActiveState") == "active", status())
    record(
        "installer prints no secret",
        "PRIVATE" not in r.stdout.upper() and "private_key" not in r.stdout,
        "",
    )
    (HERE / "state-1.json").write_text(
        json.dumps(
            {
                "recordings": {rid: manifest(rid).get("chain_head") for rid in recordings()},
                "custody": (STATE / "custody.log").read_text(),
            }
        )
    )


# --- phase 2 ----------------------------------------------------------------------------------


def phase2() -> None:
    wait_for("akkoord active after boot", lambda: show("akkoord", "ActiveState") == "active", 120)
    record(
        "after the reboot the service is up as akkoord",
        sh("ps", "-o", "user=", "-p", str(main_pid())).stdout.strip() == "akkoord",
        status(),
    )
    before = json.loads((HERE / "state-1.json").read_text())
    now = {rid: manifest(rid).get("chain_head") for rid in recordings()}
    record(
        "recordings kept across the reboot",
        now == before["recordings"],
        {"before": before["recordings"], "now": now},
    )
    custody = (STATE / "custody.log").read_text()
    record(
        "custody log kept (the old entries unchanged)", custody.startswith(before["custody"]), ""
    )
    r = sh(EXE, "custody")
    record("custody log verifies", r.returncode == 0, r.stdout[-600:] + r.stderr[-600:])
    for rid in recordings():
        ok, detail = verify(STATE / "recordings" / rid)
        record(f"recording {rid[:8]} verifies after the reboot", ok, detail)
    r = sh(str(SRC / "systemd/install.sh"), "--uninstall", timeout=120)
    record(
        "uninstall keeps the recordings",
        r.returncode == 0 and recordings() == sorted(now) and not Path("/opt/akkoord").exists(),
        r.stdout + r.stderr,
    )
    r = sh(str(SRC / "systemd/install.sh"), "--uninstall", "--purge", timeout=120)
    record(
        "uninstall --purge removes them",
        r.returncode == 0 and not STATE.exists(),
        r.stdout + r.stderr,
    )


def main() -> int:
    global results
    phase = sys.argv[1]
    results = open(HERE / f"results-{phase}.jsonl", "w")  # noqa: SIM115
    try:
        {"1": phase1, "2": phase2}[phase]()
    except Exception:
        record(f"phase {phase} ran to the end", False, traceback.format_exc())
    else:
        record(f"phase {phase} ran to the end", True)
    finally:
        results.close()
        with open(HERE / f"journal-{phase}.txt", "w") as out:
            subprocess.run(["journalctl", "--no-pager", "-o", "short-monotonic"], stdout=out,
                           check=False)
        # Phase 1 ends in a reboot (nspawn exits with 133 and the host boots the same root
        # again, as a Pi would come up again); phase 2 powers off.
        verb = "reboot" if phase == "1" else "poweroff"
        subprocess.run(["systemctl", verb, "--no-block"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
