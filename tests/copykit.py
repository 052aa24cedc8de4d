"""Building blocks for copy tests: real copies made with the project's own exporter, and
byte-level surgery on their WAV and manifest (cuts, insertions, re-signing…)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from akkoord.errors import AkkoordError
from akkoord.export.copycheck import verify_copy
from akkoord.export.package import write_copy
from akkoord.export.verifypage import render_verify_page, verify_page_template
from akkoord.export.wavfile import read_wav_info
from akkoord.store.audio_out import wav_header
from akkoord.store.custody import head_message
from akkoord.store.format import canonical_json
from akkoord.store.keys import DeviceIdentity, DevicePublicKey
from akkoord.store.layout import CONTAINER_FILE
from akkoord.store.manifest import manifest_bytes, sign_manifest
from akkoord.store.recovery import recover_recording
from akkoord.store.writer import RecordingWriter
from storekit import Kit, pcm

RATE = 16000
SEG = RATE  # 1 s segments: "second N" is segment N
FB = 2  # mono, 16 bit

AUDIO = "opname.wav"


@dataclass
class Made:
    writer: RecordingWriter
    folder: Path  # the copy folder on the "stick"
    audio: bytes  # the PCM of the copy's data chunk (gaps as zeros)

    @property
    def wav(self) -> Path:
        return self.folder / AUDIO


def samples(seconds: float) -> int:
    return round(seconds * RATE)


def at(seconds: float) -> int:
    """Byte offset of `seconds` in the data chunk."""
    return samples(seconds) * FB


def record_copy(
    kit: Kit,
    segments: int = 5,
    *,
    seed: int = 0,
    gap_after: int | None = None,
    gap_samples: int = RATE // 4,
    interrupted: bool = False,
    simulated: bool = False,
    note: str | None = None,
    stop_reason: str = "party_b",
    copy_number: int = 1,
    seg: int = SEG,
) -> Made:
    """A recording of `seconds` segments of `seg` samples (1 s by default), closed (or cut
    short by a power loss and recovered), exported with `write_copy` into a fresh folder."""
    w = kit.writer(rate=RATE, seg=seg, simulated=simulated)
    w.add_event("press", party="A", before_start_seconds=4.2)
    kit.clock.advance(4.2)
    w.add_event("press", party="B", before_start_seconds=0.0)
    w.add_event("start")
    if note is not None:
        w.add_event("note", text=note)
    audio = b""
    for i in range(segments):
        data = pcm(seed * 1000 + i, seg)
        w.add_audio(data)
        audio += data
        kit.clock.advance(seg / RATE)
        if gap_after is not None and i == gap_after:
            w.add_gap(gap_samples, "overflow", estimated=False)
            audio += bytes(gap_samples * FB)
    if interrupted:
        w._close_fd()  # the power goes: no END frame, no manifest
        with open(w.path / CONTAINER_FILE, "ab") as f:
            f.write(b"AKF1" + bytes(60))  # the torn start of a frame that never finished
        res = recover_recording(w.path, kit.identity, kit.clock, kit.custody)
        assert res.action == "interrupted", res
    else:
        party = {"party_a": "A", "party_b": "B"}.get(stop_reason)
        w.close(stop_reason, **({"party": party} if party else {}))
    stick = kit.root / f"stick-{w.id[:8]}-{copy_number}"
    stick.mkdir()
    result = write_copy(
        w.path,
        w.keys,
        stick,
        copy_number=copy_number,
        made_by="device",
        clock=kit.clock,
        device_key=kit.identity.public,
        custody_head=kit.custody.append(
            "export", w.id, copy_number=copy_number, stick_id_sha256=None
        ).to_json(),
    )
    assert read_wav(result.folder / AUDIO)[1] == audio
    return Made(w, result.folder, audio)


# --- WAV surgery ---------------------------------------------------------------------------


def read_wav(path: Path) -> tuple[int, bytes]:
    """(sample rate, data chunk bytes) of a WAV, found the way the verifier finds them."""
    with open(path, "rb") as f:
        info = read_wav_info(f, path.stat().st_size, str(path))
        f.seek(info.data_offset)
        return info.rate, f.read(info.data_len)


def write_wav(path: Path, data: bytes, rate: int = RATE, channels: int = 1) -> Path:
    path.write_bytes(wav_header(len(data), rate, channels, 2) + data)
    return path


def write_wav_with_extra_chunk(path: Path, data: bytes, rate: int = RATE) -> Path:
    """A WAV as an editor re-saves it: a LIST chunk (odd length, so padded) before `data`."""
    header = wav_header(len(data), rate, 1, 2)
    fmt = header[12:36]
    info = b"INFOISFT" + struct.pack("<I", 5) + b"edit\0"
    lst = b"LIST" + struct.pack("<I", len(info)) + info + (b"\0" if len(info) % 2 else b"")
    body = b"WAVE" + fmt + lst + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def random_change(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """One or two random edits at sample positions (not segment-aligned): cut, insert,
    duplicate, silence, flip, truncate, append, swap. Returns (description, new data)."""
    out, what = data, []
    for _ in range(rng.choice((1, 1, 2))):
        n = len(out) // FB
        a = rng.randrange(0, n + 1)
        b = min(n, a + rng.choice((1, 7, rng.randrange(1, RATE // 2 + 2), RATE)))
        op = rng.choice(
            ("cut", "insert", "duplicate", "silence", "flip", "truncate", "append", "swap")
        )
        if op == "cut":
            out = out[: a * FB] + out[b * FB :]
        elif op == "insert":
            out = out[: a * FB] + rng.randbytes((b - a + 1) * FB) + out[a * FB :]
        elif op == "duplicate":
            out = out[: b * FB] + out[a * FB : b * FB] + out[b * FB :]
        elif op == "silence":
            out = out[: a * FB] + bytes((b - a) * FB) + out[b * FB :]
        elif op == "flip" and a < n:
            out = flip_sample(out, a)
        elif op == "truncate":
            out = out[: a * FB]
        elif op == "append":
            out = out + rng.randbytes((b - a + 1) * FB)
        elif op == "swap" and b < n:
            c = min(n, b + (b - a))
            out = out[: a * FB] + out[b * FB : c * FB] + out[a * FB : b * FB] + out[c * FB :]
        what.append(f"{op}({a},{b})")
    return " + ".join(what), out


def flip_sample(data: bytes, index: int) -> bytes:
    b = bytearray(data)
    b[index * FB] ^= 0x01
    return bytes(b)


def clone(folder: Path, dst: Path) -> Path:
    """A copy of a copy folder (a holder's own copy to tamper with)."""
    shutil.copytree(folder, dst)
    return dst


def tampered_copy(made: Made, dst: Path, change: Callable[[bytes], bytes]) -> Path:
    """A clone of the copy whose opname.wav carries `change(data)`."""
    clone(made.folder, dst)
    write_wav(dst / AUDIO, change(made.audio))
    return dst


# --- manifests and pages -------------------------------------------------------------------


def copy_parts(folder: Path) -> tuple[bytes, bytes, dict]:
    """(manifest bytes, raw signature, copy.json object) as a copy folder holds them."""
    manifest = (folder / "manifest.json").read_bytes()
    sig = base64.b64decode((folder / "manifest.sig").read_bytes().strip())
    copy = json.loads((folder / "copy.json").read_bytes())
    return manifest, sig, copy


def resign(folder: Path, signer: DeviceIdentity, *, name_signer: bool = True) -> None:
    """Re-sign the copy's manifest with `signer`. With `name_signer` the manifest also names
    the signer's public key (a valid signature by another device); without, it keeps naming
    the original device (a signature that does not match the key it names)."""
    doc = json.loads((folder / "manifest.json").read_bytes())
    if name_signer:
        doc["device"] = {
            "algorithm": "ed25519",
            "fingerprint": signer.fingerprint,
            "public_key": base64.b64encode(signer.public.raw).decode(),
        }
    data = manifest_bytes(doc)
    (folder / "manifest.json").write_bytes(data)
    (folder / "manifest.sig").write_bytes(base64.b64encode(sign_manifest(data, signer)) + b"\n")
    head_path = folder / "custody-head.json"
    if name_signer and head_path.exists():  # a whole forgery: the copy record re-signed too
        head = json.loads(head_path.read_bytes())
        sig = signer.sign(head_message(head["seq"], bytes.fromhex(head["hash"])))
        head["signature"] = base64.b64encode(sig).decode()
        head["device_fingerprint"] = signer.fingerprint
        head_path.write_bytes(canonical_json(head) + b"\n")


def render_page(
    out: Path, folder: Path, device_key: DevicePublicKey, *, data_from: Path | None = None
) -> Path:
    """Write the embedded page for the copy in `data_from` (default `folder`) to `out`."""
    src = data_from or folder
    manifest, sig, copy = copy_parts(src)
    head = src / "custody-head.json"
    custody = json.loads(head.read_bytes()) if head.exists() else None
    out.write_text(render_verify_page(manifest, sig, copy, device_key, custody), encoding="utf-8")
    return out


def generic_page(out: Path) -> Path:
    """The page as published, with an empty data block: it asks for the copy's files."""
    out.write_text(verify_page_template(), encoding="utf-8")
    return out


def python_verdict(folder: Path, trusted: DevicePublicKey | None) -> tuple[str, list[list[float]]]:
    """The reference check's verdict in the page's terms: (status, changed_seconds)."""
    try:
        rep = verify_copy(folder, trusted)
    except AkkoordError:
        return "error", []
    status = rep.status
    if status == "changed" and any(f.code == "wrong_recording" for f in rep.findings):
        status = "wrong_recording"
    return status, rep.changed_seconds


# --- Firefox, driven over WebDriver BiDi (stdlib only; Playwright cannot drive a stock one) ---


class _WebSocket:
    """Just enough of RFC 6455 for a local BiDi session: text frames, client-masked."""

    def __init__(self, port: int, path: str = "/session") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("BiDi: connection closed during the handshake")
            buf += chunk
        head, self.rest = buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(f"BiDi: handshake refused: {head[:80]!r}")

    def _take(self, n: int) -> bytes:
        while len(self.rest) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("BiDi: connection closed")
            self.rest += chunk
        out, self.rest = self.rest[:n], self.rest[n:]
        return out

    def send(self, doc: dict) -> None:
        data = json.dumps(doc).encode()
        n = len(data)
        if n < 126:
            size = bytes([0x80 | n])
        elif n < 65536:
            size = bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            size = bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(
            b"\x81" + size + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        )

    def recv(self) -> dict:
        msg = b""
        while True:
            b1, b2 = self._take(2)
            n = b2 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._take(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._take(8))[0]
            msg += self._take(n)
            if b1 & 0x80:
                return json.loads(msg)

    def close(self) -> None:
        self.sock.close()


class Firefox:
    """A headless Firefox with a fresh profile; `open`, `result`, `choose` mirror the
    Playwright helpers of test_verify_page.py."""

    def __init__(self, executable: str) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="akkoord-ff-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-remote",
                "-profile",
                str(self.profile),
                "--remote-debugging-port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.ws: _WebSocket | None = None
        self.n = 0
        deadline = time.monotonic() + 60
        while self.ws is None:
            try:
                self.ws = _WebSocket(port)
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise
                time.sleep(0.2)
        self.call("session.new", capabilities={})
        self.ctx = self.call("browsingContext.getTree")["contexts"][0]["context"]

    def call(self, method: str, **params: object) -> dict:
        assert self.ws is not None
        self.n += 1
        self.ws.send({"id": self.n, "method": method, "params": params})
        while True:
            msg = self.ws.recv()
            if msg.get("id") == self.n:
                if msg.get("type") == "error":
                    raise RuntimeError(f"BiDi {method}: {msg.get('message')}")
                return msg["result"]

    def evaluate(self, expression: str) -> dict:
        res = self.call(
            "script.evaluate",
            expression=expression,
            target={"context": self.ctx},
            awaitPromise=True,
        )
        if res.get("type") == "exception":
            raise RuntimeError(f"page exception: {res['exceptionDetails'].get('text')}")
        return res["result"]

    def wait_for(self, expression: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.evaluate(f"Boolean({expression})").get("value") is not True:
            if time.monotonic() > deadline:
                raise TimeoutError(expression)
            time.sleep(0.05)  # BiDi has no wait-for-function; poll the page's own result

    def result(self) -> dict:
        return json.loads(self.evaluate("JSON.stringify(window.akkoordResult)")["value"])

    def open(self, html: Path) -> dict:
        self.call("browsingContext.navigate", context=self.ctx, url=html.as_uri(), wait="complete")
        self.wait_for("window.akkoordResult && window.akkoordResult.seq >= 1")
        return self.result()

    def choose(self, selector: str, files: list[Path]) -> dict:
        node = self.evaluate(f"document.querySelector({json.dumps(selector)})")
        seq = self.result()["seq"]
        self.call(
            "input.setFiles",
            context=self.ctx,
            element={"sharedId": node["sharedId"]},
            files=[str(f) for f in files],
        )
        self.wait_for(
            f"window.akkoordResult.seq > {seq} && (window.akkoordResult.stage === 'audio'"
            " || window.akkoordResult.status === 'error')"
        )
        return self.result()

    def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(OSError):
                self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
