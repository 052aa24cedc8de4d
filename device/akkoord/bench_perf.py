"""Issue 11's figures for `akkoord bench`: the peer (age), memory against recording length,
the honest export limit, and a competing load for the start latency.

Every figure is a ratio of two things measured in the same run on the same bytes, alternated
and best-of-N, so a busy neighbour slows both sides instead of skewing the ratio. Absolute
numbers are reported too, but only the ratios mean the same on a laptop and on a Pi.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from akkoord.clock import FixedClock
from akkoord.store.keys import DeviceIdentity
from akkoord.store.layout import CONTAINER_FILE, StateDir
from akkoord.store.writer import AudioParams, RecordingWriter

__all__ = [
    "busy_load",
    "export_limit_figures",
    "memory_figures",
    "parallel_capacity",
    "peer_figures",
    "pipeline_figures",
    "scratch_root",
    "segments_of",
    "write_recording",
]

RATE = 48000
SEGMENT_BYTES = RATE * 2  # 1 s of 48 kHz mono 16-bit, the device's default
MB = 1e6
HOUR_SEGMENTS = 3600


def scratch_root() -> str | None:
    """tmpfs when there is one: the figures are about CPU and memory, not the disk."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def segments_of(n: int, base: bytes) -> Iterator[bytes]:
    """`n` distinct 1 s segments (no layer can cache its way to a better figure), made as
    they are used so a long recording never sits in memory."""
    tail = base[4:]
    for i in range(n):
        yield i.to_bytes(4, "big") + tail


def write_recording(root: Path, n: int, base: bytes, ident: DeviceIdentity, org: Any) -> Path:
    w = RecordingWriter.create(StateDir(root), ident, [org.public], AudioParams(), FixedClock(),
                               sync=False, reserve_bytes=0)
    for pcm in segments_of(n, base):
        w.add_audio(pcm)
    w.close("bench")
    return w.path


def _read_file(path: Path) -> None:
    """What any reader of a container pays before the floor's passes: page cache to a buffer."""
    buf = bytearray(1 << 20)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _cpu_timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall, CPU) seconds of `fn`: CPU is this process's and its children's user + system
    time, which a busy neighbour does not inflate the way it inflates wall time."""
    def cpu() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
            resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    c0, t0 = cpu(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, cpu() - c0


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _default_path() -> tuple[Callable[[], Any], str]:
    """(a fresh `parallel=` for one run of the default path, what that path is): the
    default's own policy (reader.Adaptive, same thresholds) with a log of its verdicts, so
    the bench can say what each run measured and decided; with one usable CPU, False, as
    the default is then."""
    from akkoord.store.reader import PARALLEL_MIN_CPUS, Adaptive, usable_cpus

    if usable_cpus() < PARALLEL_MIN_CPUS:
        return (lambda: False), "one thread (one usable CPU)"

    class Logged(Adaptive):
        __slots__ = ("log",)

        def __init__(self) -> None:
            super().__init__()
            self.log: list[tuple[int, float, bool]] = []

        def keep(self, batches: int, wall_s: float, cpu_s: float) -> bool | None:
            verdict = super().keep(batches, wall_s, cpu_s)
            if verdict is not None:
                self.log.append((batches, cpu_s / wall_s if wall_s else 0.0, verdict))
            return verdict

    return Logged, "adaptive (worker thread while it measurably pays)"


def _decisions(log: list[tuple[int, float, bool]], batch: int) -> str:
    """One run's verdicts in words: where it switched, what the stretches measured."""
    if not log:
        return "worker thread throughout (too short to judge)"
    cores = ", ".join(f"{c:.2f}" for _, c, _ in log)
    last, _, kept = log[-1]
    if kept:
        return f"worker thread throughout (cores' worth per stretch: {cores})"
    return (f"one thread from frame ~{(last + 1) * batch} on (cores' worth per stretch: "
            f"{cores})")


# -- the peer: age, same bytes, same run ------------------------------------------------------


def peer_figures(root: Path, n: int, ident: DeviceIdentity, org: Any,
                 repeat: int = 3) -> dict[str, Any]:
    """seal / verify --key / decrypt against `age` / `age -d` (ChaCha20-Poly1305 STREAM, the
    same AEAD) on the same PCM. akkoord runs in-process; age as its own process (a few ms
    of start-up, small beside these sizes)."""
    from akkoord.store.audio_out import decrypt_recording
    from akkoord.store.verify import verify_recording

    age, keygen = shutil.which("age"), shutil.which("age-keygen")
    if not age or not keygen:
        return {"peer": "age is not installed (make bench installs it where it can): "
                        "no side-by-side figures"}
    version = subprocess.run([age, "--version"], capture_output=True, text=True).stdout.strip()
    base = os.urandom(SEGMENT_BYTES)
    pcm = root / "peer.pcm"
    with open(pcm, "wb") as f:
        for seg in segments_of(n, base):
            f.write(seg)
    keyfile = root / "age.key"
    _run([keygen, "-o", str(keyfile)])
    recipient = next(line.split(":", 1)[1].strip() for line in keyfile.read_text().splitlines()
                     if line.startswith("# public key:"))
    sealed, age_file, out_raw, out_wav = root / "peer-seal", root / "peer.age", \
        root / "peer.out", root / "peer.wav"
    best: dict[str, float] = {}
    wall: dict[str, float] = {}

    def note(name: str, fn: Callable[[], Any]) -> None:
        w, c = _cpu_timed(fn)
        best[name] = min(best.get(name, float("inf")), c)
        wall[name] = min(wall.get(name, float("inf")), w)

    floor = _floor(n, base, ident)
    written = root / "peer-write.bin"

    def write_file() -> None:  # what any writer of these bytes pays: seal's container, the WAV
        fd = os.open(written, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            at = 0
            for seg in segments_of(n, base):
                at += os.pwrite(fd, seg, at)
        finally:
            os.close(fd)

    passes = _floor_passes(n, ident)
    fresh, default_path = _default_path()

    def fresh_out(*paths: Path) -> None:
        """Every writer starts on a fresh path, as age is run: replacing the previous run's
        file would add freeing its pages (~6 % of decrypt here) to one side only."""
        for p in paths:
            p.unlink(missing_ok=True)
    decided: dict[str, list[str]] = {"verify": [], "decrypt": []}

    def adaptive(name: str, fn: Callable[[Any], Any]) -> None:
        fresh_out(out_wav)
        policy = fresh()
        note(f"{name}_adaptive", lambda: fn(policy))
        if hasattr(policy, "log"):
            decided[name].append(_decisions(policy.log, policy.batch))

    rec: Path | None = None
    for i in range(repeat):
        note("floor", floor)
        for name, fn in passes.items():
            note(name, fn)
        note("write", write_file)
        written.unlink()
        shutil.rmtree(sealed, ignore_errors=True)
        note("seal", lambda: write_recording(sealed, n, base, ident, org))
        rec = next((sealed / "recordings").iterdir())
        fresh_out(age_file)
        note("age", lambda: _run([age, "-r", recipient, "-o", str(age_file), str(pcm)]))
        # The published verify/decrypt figures are the one-thread path's (what the default
        # was on every machine they were taken on); the default's own are *_adaptive_*.
        note("read", lambda r=rec: _read_file(r / CONTAINER_FILE))
        note("verify", lambda r=rec: verify_recording(r, org, parallel=False))
        adaptive("verify", lambda p, r=rec: verify_recording(r, org, parallel=p))
        note("verify_worker", lambda r=rec: verify_recording(r, org, parallel=True))
        fresh_out(out_wav)
        note("decrypt", lambda r=rec: decrypt_recording(r, org, out_wav, parallel=False))
        adaptive("decrypt", lambda p, r=rec: decrypt_recording(r, org, out_wav, parallel=p))
        fresh_out(out_wav)
        note("decrypt_worker", lambda r=rec: decrypt_recording(r, org, out_wav, parallel=True))
        fresh_out(out_raw)
        note("age_d", lambda: _run([age, "-d", "-i", str(keyfile), "-o", str(out_raw),
                                    str(age_file)]))
        # age -d writes its output, verify --key writes nothing: the same work as verify's
        # is age -d into /dev/null (reported beside the comparison, not instead).
        note("age_d_null", lambda: _run([age, "-d", "-i", str(keyfile), "-o", os.devnull,
                                         str(age_file)]))
        if i == 0:  # same audio out of both: the comparison is of equal work
            with open(out_wav, "rb") as a, open(out_raw, "rb") as b:
                a.seek(44)
                if hashlib.sha256(a.read()).digest() != hashlib.sha256(b.read()).digest():
                    raise RuntimeError("akkoord decrypt and age -d gave different audio")
        for p in (out_raw, out_wav):
            p.unlink()
    for p in (pcm, age_file, keyfile):
        p.unlink()
    shutil.rmtree(sealed, ignore_errors=True)
    mb = n * SEGMENT_BYTES / MB
    seq_floor = best["aead"] + best["mac"] + best["chain"]
    extra = best["mac"] + best["chain"]  # the passes the format adds to age's one
    par_floor = max(best["aead"], best["mac"], best["chain"])
    two_floor = max(best["aead"] + best["chain"], best["mac"])

    def paths(op: str) -> dict[str, Any]:
        """The default path (adaptive) and the worker thread against the one-thread path,
        age -d and the floors: wall is what one waits, CPU what the machine pays."""
        a, w, one = f"{op}_adaptive", f"{op}_worker", op
        return {
            f"{op}_one_thread_wall_s": round(wall[one], 3),
            f"{a}_wall_s": round(wall[a], 3),
            f"{a}_cpu_s": round(best[a], 3),
            f"{w}_wall_s": round(wall[w], 3),
            f"{w}_cpu_s": round(best[w], 3),
            f"{a}_decisions": decided[op],
            f"{a}_vs_one_thread_wall": round(wall[a] / wall[one], 3),
            f"{a}_vs_one_thread_cpu": round(best[a] / best[one], 3),
            f"{w}_vs_one_thread_wall": round(wall[w] / wall[one], 3),
            f"{w}_vs_one_thread_cpu": round(best[w] / best[one], 3),
            f"{a}_vs_age_d": round(best[a] / best["age_d"], 3),
            f"{a}_vs_age_d_wall": round(wall[a] / wall["age_d"], 3),
            f"{w}_vs_age_d": round(best[w] / best["age_d"], 3),
            f"{w}_vs_age_d_wall": round(wall[w] / wall["age_d"], 3),
            f"{a}_vs_format_floor": round(best[a] / best["floor"], 3),
            f"{a}_vs_format_floor_parallel_wall": round(wall[a] / par_floor, 3),
            f"{a}_vs_format_floor_two_threads_wall": round(wall[a] / two_floor, 3),
            # decrypt writes the WAV, outside the floor (as in decrypt_vs_verify_key_and_write)
            **({f"{a}_vs_format_floor_and_write": round(
                best[a] / (best["floor"] + best["write"]), 3)} if op == "decrypt" else {}),
        }

    return {
        "peer": version and f"age {version}",
        "default_path": default_path,
        **paths("verify"),
        **paths("decrypt"),
        "peer_mb": round(mb, 1),
        # Ratios of CPU seconds (user + system, age's as a child process): on a shared
        # machine wall time swings with the neighbours; the *_wall_* figures are wall time.
        "peer_ratios_measure": "cpu",
        "seal_vs_age_wall": round(wall["seal"] / wall["age"], 3),
        "verify_key_vs_age_d_wall": round(wall["verify"] / wall["age_d"], 3),
        "decrypt_vs_age_d_wall": round(wall["decrypt"] / wall["age_d"], 3),
        "decrypt_vs_verify_key_wall": round(wall["decrypt"] / wall["verify"], 3),
        "peer_seal_cpu_s": round(best["seal"], 3),
        "peer_age_encrypt_cpu_s": round(best["age"], 3),
        "peer_verify_key_cpu_s": round(best["verify"], 3),
        "peer_decrypt_cpu_s": round(best["decrypt"], 3),
        "peer_age_decrypt_cpu_s": round(best["age_d"], 3),
        # The format's floor on the same bytes: what no implementation of it can skip.
        "peer_format_floor_cpu_s": round(best["floor"], 3),
        "format_floor_vs_age_d": round(best["floor"] / best["age_d"], 3),
        "seal_vs_format_floor": round(best["seal"] / best["floor"], 3),
        "verify_key_vs_format_floor": round(best["verify"] / best["floor"], 3),
        "seal_vs_age": round(best["seal"] / best["age"], 3),
        "verify_key_vs_age_d": round(best["verify"] / best["age_d"], 3),
        "decrypt_vs_age_d": round(best["decrypt"] / best["age_d"], 3),
        "decrypt_vs_verify_key": round(best["decrypt"] / best["verify"], 3),
        # Writing the bytes (to the same scratch folder, in one-segment writes, the input
        # made as seal's is) is outside the floor: seal writes the container, decrypt the
        # WAV. With it, what is left above is the per-frame Python of each.
        "write_file_cpu_s": round(best["write"], 6),  # small runs write in well under 1 ms
        "seal_vs_format_floor_and_write": round(best["seal"] / (best["floor"] + best["write"]),
                                                3),
        "decrypt_vs_verify_key_and_write": round(
            best["decrypt"] / (best["verify"] + best["write"]), 3),
        # Reading the container (page cache to our buffer, the bytes' one trip from memory)
        # is outside the floor too; the floor's passes run over one warm buffer.
        "peer_read_file_cpu_s": round(best["read"], 6),
        "verify_key_vs_format_floor_and_read": round(best["verify"] / (seq_floor + best["read"]),
                                                     3),
        # The default path on both sides: what the WAV costs one who waits for it.
        "decrypt_adaptive_vs_verify_adaptive_wall": round(
            wall["decrypt_adaptive"] / wall["verify_adaptive"], 3),
        "decrypt_adaptive_vs_verify_adaptive_cpu": round(
            best["decrypt_adaptive"] / best["verify_adaptive"], 3),
        # age -d into /dev/null: age doing exactly verify --key's work (no output written).
        "peer_age_decrypt_null_cpu_s": round(best["age_d_null"], 3),
        "verify_key_vs_age_d_null": round(best["verify"] / best["age_d_null"], 3),
        "verify_key_vs_age_d_null_wall": round(wall["verify"] / wall["age_d_null"], 3),
        # The peer doing the same work: age's run plus the two passes the format adds (audio
        # MAC, chain with its checkpoint signatures), each measured on its own in this run.
        # What is left above 1 is this implementation, not the format.
        "format_extra_passes_cpu_s": round(extra, 6),
        "seal_vs_age_and_format_passes": round(best["seal"] / (best["age"] + extra), 3),
        "verify_key_vs_age_d_null_and_format_passes": round(
            best["verify"] / (best["age_d_null"] + extra), 3),
        "decrypt_vs_age_d_and_format_passes": round(best["decrypt"] / (best["age_d"] + extra), 3),
        # The same as a bound on the plain ratios: age's own run plus the two passes, over
        # age's run. With these primitives no implementation of the format gets below it
        # (short of fusing passes in C); where it is above a plain ratio's target, that
        # target cannot be met on this machine.
        "seal_vs_age_format_bound": round((best["age"] + extra) / best["age"], 3),
        "verify_key_vs_age_d_format_bound": round((best["age_d_null"] + extra) / best["age_d"], 3),
        "decrypt_vs_age_d_format_bound": round((best["age_d"] + extra) / best["age_d"], 3),
    }


def _floor(n: int, base: bytes, ident: DeviceIdentity) -> Callable[[], None]:
    """What FORMAT.md makes every reader or writer do per byte, with no framing and no I/O:
    ChaCha20-Poly1305 over the bytes, HMAC-SHA-256 over the plaintext (the audio MAC),
    SHA-256 over the ciphertext and the seal; and one Ed25519 signature checked per 10 s
    (the checkpoints). Encrypting costs what decrypting does, so one floor serves both."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    from akkoord.store.format import HEADER_LEN, checkpoint_message, nonce_for

    aead, mac_key, head = ChaCha20Poly1305(os.urandom(32)), os.urandom(32), bytes(HEADER_LEN)
    msg = checkpoint_message(head, b"{}")
    sig = ident.sign(msg)
    out = bytearray(SEGMENT_BYTES + 16)

    def run() -> None:
        for i, pcm in enumerate(segments_of(n, base)):
            hmac.digest(mac_key, pcm, "sha256")
            aead.encrypt_into(nonce_for(i, False), pcm, head, out)
            hashlib.sha256(head + hashlib.sha256(out).digest()).digest()
            if i % 10 == 0:
                ident.public.verify(sig, msg)

    return run


# -- the floor pass by pass, and verify with and without its worker thread -------------------


def _floor_passes(n: int, ident: DeviceIdentity) -> dict[str, Callable[[], None]]:
    """The floor's three passes over `n` distinct segments, each on its own: the AEAD, the
    audio MAC (HMAC-SHA-256 of the plaintext) and the keyless chain (SHA-256 of the
    ciphertext, the seal, an Ed25519 checkpoint per 10 s). One buffer, its first bytes
    changed per segment: distinct bytes, no copies the passes themselves do not need."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    from akkoord.store.format import HEADER_LEN, checkpoint_message, nonce_for

    aead, mac_key, head = ChaCha20Poly1305(os.urandom(32)), os.urandom(32), bytes(HEADER_LEN)
    msg = checkpoint_message(head, b"{}")
    sig = ident.sign(msg)
    pcm = bytearray(os.urandom(SEGMENT_BYTES))
    ct = bytearray(os.urandom(SEGMENT_BYTES + 16))

    def run_aead() -> None:
        for i in range(n):
            pcm[:4] = i.to_bytes(4, "big")
            aead.encrypt_into(nonce_for(i, False), pcm, head, ct)

    def run_mac() -> None:
        for i in range(n):
            pcm[:4] = i.to_bytes(4, "big")
            hmac.digest(mac_key, pcm, "sha256")

    def run_chain() -> None:
        for i in range(n):
            ct[:4] = i.to_bytes(4, "big")
            hashlib.sha256(head + hashlib.sha256(ct).digest()).digest()
            if i % 10 == 0:
                ident.public.verify(sig, msg)

    return {"aead": run_aead, "mac": run_mac, "chain": run_chain}


_CAPACITY_CHILD = """
import hashlib, os, time
buf = os.urandom(1 << 20)
t = time.perf_counter()
for _ in range(200):
    hashlib.sha256(buf).digest()
print(time.perf_counter() - t)
"""


def parallel_capacity(repeat: int = 3) -> float:
    """How many cores' worth two processes get at once here: 2 x (one alone) / (two side by
    side), best of `repeat`. ~2 on an idle machine with two free cores; ~1 where the other
    cores are taken (then no thread of ours can run beside another)."""
    def run(k: int) -> float:
        procs = [subprocess.Popen([sys.executable, "-c", _CAPACITY_CHILD],
                                  stdout=subprocess.PIPE, text=True) for _ in range(k)]
        t = time.perf_counter()
        for p in procs:
            p.communicate()
        return time.perf_counter() - t

    best = 0.0
    for _ in range(repeat):
        one, two = run(1), run(2)
        best = max(best, 2 * one / two)
    return round(best, 2)


def pipeline_figures(root: Path, n: int, ident: DeviceIdentity, org: Any,
                     repeat: int = 3) -> dict[str, Any]:
    """The format's floor pass by pass and `verify --key` with and without its worker
    thread (reader.scan_ahead), alternated on the same recording in the same run.

    Sequential floor: the three passes one after another, what one thread must do.
    Parallel floor: the longest pass, what no number of threads beats. The worker's split
    (AEAD + chain on the worker, MAC and rules on the caller) has its own floor, the
    longer of its two halves. CPU seconds count every thread; wall seconds are what one
    waits, and only fall below CPU where a second core is free (`parallel_capacity`)."""
    from akkoord.store.reader import PARALLEL_MIN_CPUS, usable_cpus
    from akkoord.store.verify import verify_recording

    rec = write_recording(root / "pipeline", n, os.urandom(SEGMENT_BYTES), ident, org)
    passes = _floor_passes(n, ident)
    cpu: dict[str, float] = {}
    wall: dict[str, float] = {}

    def note(name: str, fn: Callable[[], Any]) -> None:
        w, c = _cpu_timed(fn)
        # (getrusage counts in ticks on some kernels: a tiny run can read 0)
        cpu[name] = min(cpu.get(name, float("inf")), max(c, 1e-6))
        wall[name] = min(wall.get(name, float("inf")), max(w, 1e-6))

    container = rec / CONTAINER_FILE

    for _ in range(repeat):
        for name, fn in passes.items():
            note(name, fn)
        note("read", lambda: _read_file(container))
        note("sequential", lambda: verify_recording(rec, org, parallel=False))
        note("pipeline", lambda: verify_recording(rec, org, parallel=True))
    shutil.rmtree(root / "pipeline")
    mb = n * SEGMENT_BYTES / MB
    seq_floor = cpu["aead"] + cpu["mac"] + cpu["chain"]
    par_floor = max(cpu["aead"], cpu["mac"], cpu["chain"])
    two_floor = max(cpu["aead"] + cpu["chain"], cpu["mac"])
    cpus = usable_cpus()
    return {
        "usable_cpus": cpus,
        "parallel_capacity": parallel_capacity(),
        # Whether verify starts with the worker thread by default (then keeps it only
        # while it measurably pays: reader.Adaptive, the *_adaptive_* figures).
        "verify_uses_worker_thread": cpus >= PARALLEL_MIN_CPUS,
        "chacha20_poly1305_gb_s": round(mb / 1000 / cpu["aead"], 2),
        "hmac_sha256_gb_s": round(mb / 1000 / cpu["mac"], 2),
        "chain_sha256_gb_s": round(mb / 1000 / cpu["chain"], 2),
        "format_floor_sequential_cpu_s": round(seq_floor, 3),
        "format_floor_parallel_s": round(par_floor, 3),
        "format_floor_two_threads_s": round(two_floor, 3),
        "verify_sequential_cpu_s": round(cpu["sequential"], 3),
        "verify_sequential_wall_s": round(wall["sequential"], 3),
        "verify_pipeline_cpu_s": round(cpu["pipeline"], 3),
        "verify_pipeline_wall_s": round(wall["pipeline"], 3),
        "verify_sequential_vs_format_floor_sequential": round(cpu["sequential"] / seq_floor, 3),
        # Reading the container (page cache to our buffer) is outside the floor; with it,
        # what is left above is the per-frame Python of the verifier.
        "read_file_cpu_s": round(cpu["read"], 3),
        "verify_sequential_vs_format_floor_and_read": round(
            cpu["sequential"] / (seq_floor + cpu["read"]), 3),
        "verify_pipeline_vs_sequential_wall": round(wall["pipeline"] / wall["sequential"], 3),
        "verify_pipeline_vs_sequential_cpu": round(cpu["pipeline"] / cpu["sequential"], 3),
        "verify_pipeline_vs_format_floor_parallel_wall": round(wall["pipeline"] / par_floor, 3),
        "verify_pipeline_vs_format_floor_two_threads_wall": round(
            wall["pipeline"] / two_floor, 3),
    }


# -- memory against recording length ----------------------------------------------------------

_RSS_CHILD = """
import json, os, sys, time
from pathlib import Path
def hwm():  # VmHWM, not ru_maxrss: the latter keeps the forked parent's peak across exec
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
mode, args = sys.argv[1], sys.argv[2:]
from akkoord.clock import FixedClock
from akkoord.store.keys import DeviceIdentity, DevicePublicKey, OrgPrivateKey
from akkoord.store.verify import load_content_keys, verify_recording
from akkoord.store.audio_out import decrypt_recording
from akkoord.export.package import write_copy
from akkoord.bench_perf import write_recording
before = hwm()
t0 = time.perf_counter()
if mode == "seal":
    root, n, keys = Path(args[0]), int(args[1]), Path(args[2])
    org = OrgPrivateKey.load(keys / "org.key")
    ok = write_recording(root, n, os.urandom(96000), DeviceIdentity.load(keys), org) is not None
else:
    rec, keys = Path(args[0]), Path(args[1])
    org = OrgPrivateKey.load(keys / "org.key")
    if mode == "verify":
        ok = verify_recording(rec, org).ok
    elif mode == "decrypt":
        ok = decrypt_recording(rec, org, Path(args[2])).written
    else:
        res = write_copy(rec, load_content_keys(rec, org), Path(args[2]), copy_number=1,
                         made_by="organisation", clock=FixedClock(),
                         device_key=DevicePublicKey.load(keys / "device.pub"), custody_head=None)
        ok = res.bytes_written > 0
print(json.dumps({"ok": ok, "rss_kb": hwm(), "baseline_kb": before,
                  "seconds": time.perf_counter() - t0}))
"""


def _child_rss(mode: str, *args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD, mode, *args],
                         check=True, capture_output=True, text=True)
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    if not doc["ok"]:
        raise RuntimeError(f"memory benchmark: {mode} failed")
    return doc


def memory_figures(root: Path, long_segments: int, ident: DeviceIdentity,
                   org: Any) -> dict[str, Any]:
    """Peak RSS (VmHWM, fresh process) of seal, verify --key, decrypt and export for a short
    and a long recording: the growth per hour of audio, and the peak projected to 12 h."""
    keys = root / "mem-keys"
    ident.save(keys)
    (keys / "org.key").write_bytes(org.dumps())
    short = max(60, long_segments // 8)
    lengths = (short, max(long_segments, short * 2))
    peaks: dict[str, dict[int, float]] = {}
    for n in lengths:
        state = root / f"mem-{n}"
        doc = _child_rss("seal", str(state), str(n), str(keys))
        peaks.setdefault("seal", {})[n] = doc["rss_kb"] / 1024
        rec = next((state / "recordings").iterdir())
        for mode in ("verify", "decrypt", "export"):
            out = root / f"mem-{mode}-{n}"
            if mode == "export":
                out.mkdir()
            doc = _child_rss(mode, str(rec), str(keys), str(out))
            peaks.setdefault(mode, {})[n] = doc["rss_kb"] / 1024
            if out.is_dir():
                shutil.rmtree(out)
            else:
                out.unlink(missing_ok=True)
        shutil.rmtree(state)
    a, b = lengths
    result: dict[str, Any] = {"memory_hours": [round(a / 3600, 2), round(b / 3600, 2)]}
    for mode, by_n in peaks.items():
        per_hour = (by_n[b] - by_n[a]) / ((b - a) / HOUR_SEGMENTS)
        at_12h = by_n[b] + per_hour * (12 - b / HOUR_SEGMENTS)
        result[f"{mode}_peak_rss_mb"] = round(by_n[b], 1)
        result[f"{mode}_rss_mb_per_hour"] = round(per_hour, 2)
        result[f"{mode}_rss_at_12h_mb"] = round(at_12h, 1)
        result[f"{mode}_rss_at_12h_vs_limit"] = round(at_12h / 48, 3)
    return result


# -- the honest export limit ----------------------------------------------------------------------

_EXPORT_CHILD = """
import hashlib, json, os, shutil, sys, time
from pathlib import Path
procs, rec, keys, target, repeat = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), \\
    Path(sys.argv[4]), int(sys.argv[5])
if procs != "-":
    with open(procs, "w") as f:  # into the throttled cgroup, before any I/O
        f.write(str(os.getpid()))
from akkoord.clock import FixedClock
from akkoord.export.package import write_copy
from akkoord.store.keys import DevicePublicKey, OrgPrivateKey
from akkoord.store.verify import load_content_keys
org = OrgPrivateKey.load(keys / "org.key")
ck = load_content_keys(rec, org)
dev = DevicePublicKey.load(keys / "device.pub")
source = rec / "recording.akr"

def copy(dst, nbytes, read_back):
    # cp + sync (+ drop the file's cache + read back + hash): what a copy must cost at least
    buf = bytearray(1 << 20)
    with open(source, "rb", buffering=0) as src:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        left = nbytes
        while left > 0:
            n = src.readinto(memoryview(buf)[: min(left, len(buf))]) or 0
            if n == 0:
                src.seek(0)
                continue
            view = memoryview(buf)[:n]
            while view:
                view = view[os.write(fd, view):]
            left -= n
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    if read_back:
        h = hashlib.sha256()
        with open(dst, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                h.update(memoryview(buf)[:n])

best = {"export": 1e9, "plain": 1e9, "readback": 1e9}
nbytes = 0
for i in range(repeat):
    t = time.perf_counter()
    res = write_copy(rec, ck, target, copy_number=i + 1, made_by="organisation",
                     clock=FixedClock(), device_key=dev, custody_head=None)
    best["export"] = min(best["export"], time.perf_counter() - t)
    nbytes = res.bytes_written
    shutil.rmtree(res.folder)
    for kind in ("plain", "readback"):
        dst = target / f"{kind}{i}"
        t = time.perf_counter()
        copy(dst, nbytes, kind == "readback")
        best[kind] = min(best[kind], time.perf_counter() - t)
        dst.unlink()
print(json.dumps({"bytes": nbytes, **best}))
"""

WRITE_BPS, READ_BPS = 20 * 1024 * 1024, 30 * 1024 * 1024


@contextlib.contextmanager
def throttled_target(root: Path, size: int) -> Iterator[tuple[Path, str | None, str]]:
    """(folder, cgroup.procs to join or None, what it is): an ext4 file system on a loop
    device backed by tmpfs, throttled to 20 MB/s write / 30 MB/s read by the cgroup io
    controller (v2 io.max, else v1 blkio) — a USB stick's speeds without one. Falls back
    to a plain folder, and says why, where that is not allowed."""
    made: list[Callable[[], None]] = []
    try:
        try:
            target, procs, what = _setup_throttle(root, size, made)
        except (OSError, subprocess.CalledProcessError, RuntimeError) as exc:
            for undo in reversed(made):
                with contextlib.suppress(Exception):
                    undo()
            made.clear()
            plain = root / "export-plain"
            plain.mkdir(exist_ok=True)
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            yield plain, None, f"plain folder on {plain.parent} (no throttled target: {reason})"
            return
        yield target, procs, what
    finally:
        for undo in reversed(made):
            with contextlib.suppress(Exception):
                undo()


def _setup_throttle(root: Path, size: int,
                    made: list[Callable[[], None]]) -> tuple[Path, str, str]:
    if os.geteuid() != 0:
        raise RuntimeError("needs root (loop device, mount, cgroup)")
    for tool in ("losetup", "mkfs.ext4", "mount", "umount"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed")
    image = root / "stick.img"
    with open(image, "wb") as f:
        f.truncate(size)
    made.append(image.unlink)
    loop = subprocess.run(["losetup", "-f", "--show", str(image)], check=True,
                          capture_output=True, text=True).stdout.strip()
    made.append(lambda: _run(["losetup", "-d", loop]))
    _run(["mkfs.ext4", "-q", "-F", loop])
    mnt = root / "stick"
    mnt.mkdir()
    made.append(mnt.rmdir)
    _run(["mount", loop, str(mnt)])
    made.append(lambda: _run(["umount", str(mnt)]))
    st = os.stat(loop)
    dev = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    name = f"akkoord-bench-{os.getpid()}"
    v2 = Path("/sys/fs/cgroup")
    controllers = v2 / "cgroup.controllers"
    if controllers.exists() and "io" in controllers.read_text().split():
        group = v2 / name
        group.mkdir()
        made.append(group.rmdir)
        (group / "io.max").write_text(f"{dev} wbps={WRITE_BPS} rbps={READ_BPS}\n")
        how = "cgroup v2 io.max"
    else:
        blkio = v2 / "blkio"
        if not (blkio / "blkio.throttle.write_bps_device").exists():
            raise RuntimeError("neither cgroup v2 io nor v1 blkio throttling is available")
        group = blkio / name
        group.mkdir()
        made.append(group.rmdir)
        (group / "blkio.throttle.write_bps_device").write_text(f"{dev} {WRITE_BPS}\n")
        (group / "blkio.throttle.read_bps_device").write_text(f"{dev} {READ_BPS}\n")
        how = "cgroup v1 blkio"
    return mnt, str(group / "cgroup.procs"), (
        f"ext4 on a tmpfs-backed loop device, throttled to {WRITE_BPS >> 20} MiB/s write / "
        f"{READ_BPS >> 20} MiB/s read ({how})")


def export_limit_figures(root: Path, recording: Path, ident: DeviceIdentity, org: Any,
                         repeat: int = 3) -> dict[str, Any]:
    """A copy (decrypt, write, fsync, drop the cache, read back, verify, publish) against
    the same number of bytes copied plainly (cp + sync) and copied and read back (cp +
    sync + drop the cache + read back + hash): the latter is the limit, because every copy
    is read back on purpose."""
    keys = root / "export-keys"
    ident.save(keys)
    (keys / "org.key").write_bytes(org.dumps())
    size = sum(p.stat().st_size for p in recording.iterdir())
    with throttled_target(root, 3 * size + (64 << 20)) as (target, procs, what):
        out = subprocess.run(
            [sys.executable, "-c", _EXPORT_CHILD, procs or "-", str(recording), str(keys),
             str(target), str(repeat)],
            check=True, capture_output=True, text=True, timeout=1800)
        doc = json.loads(out.stdout.strip().splitlines()[-1])
    nbytes = doc["bytes"]
    return {
        "export_target": what,
        "export_throttled": procs is not None,
        "export_mb": round(nbytes / MB, 1),
        "export_mb_s": round(nbytes / MB / doc["export"], 1),
        "plain_copy_mb_s": round(nbytes / MB / doc["plain"], 1),
        "write_readback_mb_s": round(nbytes / MB / doc["readback"], 1),
        "export_vs_plain_copy": round(doc["plain"] / doc["export"], 3),
        "export_vs_write_readback": round(doc["readback"] / doc["export"], 3),
    }


# -- a competing load ---------------------------------------------------------------------------


@contextlib.contextmanager
def busy_load(processes: int | None = None) -> Iterator[int]:
    """One busy-looping process per core for the duration (ended by pid afterwards)."""
    n = processes or os.cpu_count() or 1
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.2)  # let them reach the scheduler
        yield n
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def temp_root() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="akkoord-bench-", dir=scratch_root())
