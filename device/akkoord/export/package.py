"""Write one copy of a recording into a folder on an untrusted target (a USB stick).

Nothing on the target is trusted or followed: every file is created with O_EXCL|O_NOFOLLOW
relative to a directory descriptor, under single-component names we choose. The copy is
written into `<name>.<random>.partial`, each file fsync'ed and its cached pages dropped, then
read back *from the stick* and verified against the signed manifest, and only then renamed to
its final name (never replacing anything) and the stick's directory fsync'ed. A copy that
fails is removed where the stick still lets us; a stick pulled midway leaves at most a
`.partial` folder, which never verifies as a finished copy.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import errno
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from akkoord.clock import Clock
from akkoord.errors import FormatError, StorageError
from akkoord.export.copycheck import AUDIO_FILE, COPY_FILE, COPY_FORMAT, verify_copy
from akkoord.export.texts import notice_en, notice_nl
from akkoord.export.verifypage import render_verify_page_chunks
from akkoord.store.audio_out import wav_header
from akkoord.store.format import Kind, canonical_json, nonce_for
from akkoord.store.keys import ContentKeys, DevicePublicKey
from akkoord.store.layout import CONTAINER_FILE
from akkoord.store.manifest import (
    MANIFEST_FILE,
    SIGNATURE_FILE,
    SignedManifest,
    iter_segments,
    read_manifest,
)
from akkoord.store.reader import Damage, scan

__all__ = ["CopyResult", "CopyTarget", "write_copy"]

_RENAME_NOREPLACE = 1
_write = os.write  # the one call that touches the stick's data; tests fail it on purpose


@dataclass(frozen=True)
class CopyResult:
    folder: Path
    name: str
    bytes_written: int
    copy: dict[str, Any]


class CopyTarget:
    """Directory-descriptor-relative file creation on a target we do not trust."""

    def __init__(self, parent: Path) -> None:
        self.parent = Path(parent)
        try:
            self.dfd = os.open(self.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as exc:
            raise StorageError(
                exc.errno or errno.EIO, f"cannot open the copy target {parent}: {exc.strerror}"
            ) from exc

    def close(self) -> None:
        os.close(self.dfd)

    def fresh_name(self, base: str) -> str:
        """`base`, or `base-2`, `base-3`…: never an existing entry (file, folder or link)."""
        for n in range(1, 1000):
            name = base if n == 1 else f"{base}-{n}"
            try:
                os.stat(name, dir_fd=self.dfd, follow_symlinks=False)
            except FileNotFoundError:
                return name
        raise StorageError(errno.EEXIST, f"{self.parent}: no free name for {base}")


def _drop_cache(fd: int) -> None:
    # So that the read-back below reads the stick, not what we just wrote into RAM.
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _rename_noreplace(dfd: int, old: str, new: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)  # libc is already loaded: no ldconfig subprocess
    fn = getattr(libc, "renameat2", None)
    if fn is not None:
        r = fn(dfd, old.encode(), dfd, new.encode(), _RENAME_NOREPLACE)
        if r == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(err, os.strerror(err), new)
    # File systems without RENAME_NOREPLACE: check, then rename (we hold the stick).
    try:
        os.stat(new, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        os.rename(old, new, src_dir_fd=dfd, dst_dir_fd=dfd)
        return
    raise OSError(errno.EEXIST, "target exists", new)


class _Writer:
    def __init__(self, dfd: int, where: str) -> None:
        self.dfd, self.where, self.total = dfd, where, 0

    def file(self, name: str, chunks: Any) -> None:
        fd = os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=self.dfd
        )
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    n = _write(fd, view)
                    view = view[n:]
                    self.total += n
            os.fsync(fd)
            _drop_cache(fd)
        finally:
            os.close(fd)


def _audio_chunks(
    directory: Path,
    keys: ContentKeys,
    signed: SignedManifest,
    progress: Callable[[int], None] | None,
) -> Any:
    """The WAV, streamed: header, then each segment decrypted and checked against the signed
    manifest, gaps as silence. Raises FormatError rather than write audio that fails.

    Memory does not follow the recording's length: the manifest's segment list is walked in
    step with the frames (both are in frame order), and every segment is decrypted into one
    reused buffer that the caller writes out before the next frame is read."""
    manifest = signed.doc
    audio = manifest["audio"]
    rate, channels, width = audio["sample_rate"], audio["channels"], audio["sample_width"]
    fb = channels * width
    total = manifest["duration_samples"]
    yield wav_header(total * fb, rate, channels, width)
    expected = iter_segments(signed)
    rid = bytes.fromhex(manifest["recording_id"])
    aead = ChaCha20Poly1305(keys.seal_key)
    position = 0
    container = directory / CONTAINER_FILE
    buf = bytearray(1 << 17)
    pending: list[memoryview] = []  # at most one segment: yielded before the next is read

    def on_body(frame: Any, body: memoryview) -> None:
        nonlocal buf
        h = frame.header
        if h.kind != Kind.AUDIO:
            return
        n = max(0, len(body) - 16)
        if len(buf) < n:
            buf = bytearray(n)
        pcm = memoryview(buf)[:n]
        try:
            aead.decrypt_into(
                nonce_for(h.index, h.final), body, frame.header_bytes + frame.meta_bytes, pcm
            )
        except (InvalidTag, ValueError):
            raise FormatError(f"{container}: frame {h.index} does not decrypt") from None
        # The AEAD tag proves the plaintext is what the device sealed under this header, and
        # the header's MAC must be the signed manifest's; that the bytes on the stick hash
        # to it is checked once, on the read-back.
        if h.recording_id != rid or next(expected, None) != (
            h.index,
            h.start_sample,
            h.samples,
            h.audio_mac.hex(),
        ):
            raise FormatError(f"{container}: frame {h.index} does not match the manifest")
        pending.append(pcm)

    with open(container, "rb") as f:
        for item in scan(f, container.stat().st_size, on_body):
            if isinstance(item, Damage):
                raise FormatError(f"{container}: damaged at byte {item.offset}; verify it")
            h = item.header
            if h.kind == Kind.GAP:
                pending.append(memoryview(bytes(h.samples * fb)))
            if h.kind not in (Kind.AUDIO, Kind.GAP):
                continue
            if h.start_sample != position:
                raise FormatError(f"{container}: frame {h.index} is out of place")
            position += h.samples
            yield from pending
            pending.clear()
            if progress is not None:
                progress(position)
    if position != total or next(expected, None) is not None:
        raise FormatError(f"{container}: holds {position} samples, the manifest {total}")


def _remove_partial(dfd: int, name: str) -> None:
    """Best effort: the stick may be gone, full or read-only by now. Only the plain files
    we created are unlinked (never followed), then the folder itself."""
    try:
        pdfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
    except OSError:
        return
    try:
        for entry in os.listdir(pdfd):
            with contextlib.suppress(OSError):
                os.unlink(entry, dir_fd=pdfd)
    except OSError:
        pass
    finally:
        os.close(pdfd)
    with contextlib.suppress(OSError):
        os.rmdir(name, dir_fd=dfd)
        os.fsync(dfd)


def folder_name(manifest: dict[str, Any], copy_number: int) -> str:
    utc = str((manifest.get("created") or {}).get("utc", ""))
    stamp = "".join(ch for ch in utc[:16] if ch.isdigit())
    stamp = f"{stamp[:8]}-{stamp[8:12]}" if len(stamp) == 12 else "onbekend"
    return f"akkoord-{stamp}-{manifest['recording_id'][:8]}-kopie{copy_number}"


def write_copy(
    directory: Path,
    keys: ContentKeys,
    target: Path,
    *,
    copy_number: int,
    made_by: str,
    clock: Clock,
    device_key: DevicePublicKey,
    custody_head: dict[str, Any] | None,
    progress: Callable[[int], None] | None = None,
) -> CopyResult:
    """Write, read back, verify, then publish one copy folder under `target`."""
    directory = Path(directory)
    signed = read_manifest(directory, segments=False)  # the segment list is walked, not built
    if signed is None or signed.signature is None:
        raise FormatError(f"{directory}: not closed and signed; nothing to copy")
    manifest = signed.doc
    if manifest["device"]["public_key"] != base64.b64encode(device_key.raw).decode():
        raise FormatError(f"{directory}: signed by another device than the one exporting")
    copy = {
        "format": COPY_FORMAT,
        "recording_id": manifest["recording_id"],
        "copy_number": copy_number,
        # A device copy's time is its signed custody entry's (FORMAT.md §9 step 3).
        "made": (custody_head or {}).get("entry", {}).get("time") or clock.wall().to_json(),
        "made_by": made_by,
        "audio_file": AUDIO_FILE,
        "audio_mac_key": base64.b64encode(keys.mac_key).decode(),
        "device": {
            "fingerprint": device_key.fingerprint,
            "public_key": base64.b64encode(device_key.raw).decode(),
        },
    }
    sig_text = base64.b64encode(signed.signature).decode() + "\n"
    tgt = CopyTarget(target)
    partial: str | None = None
    published = False
    try:
        final = tgt.fresh_name(folder_name(manifest, copy_number))
        partial = f".{final}.{secrets.token_hex(4)}.partial"
        os.mkdir(partial, 0o755, dir_fd=tgt.dfd)
        pdfd = os.open(partial, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=tgt.dfd)
        try:
            w = _Writer(pdfd, f"{target}/{partial}")
            w.file(AUDIO_FILE, _audio_chunks(directory, keys, signed, progress))
            w.file(MANIFEST_FILE, [signed.data])
            w.file(SIGNATURE_FILE, [sig_text.encode()])
            w.file(COPY_FILE, [canonical_json(copy) + b"\n"])
            w.file("device.pub", [json.dumps(device_key.to_json(), indent=1).encode() + b"\n"])
            if custody_head is not None:
                w.file("custody-head.json", [canonical_json(custody_head) + b"\n"])
            # The notices list exactly what this copy holds (an organisation's copy has no
            # custody head).
            files = [AUDIO_FILE, MANIFEST_FILE, SIGNATURE_FILE, COPY_FILE, "device.pub",
                     *(["custody-head.json"] if custody_head is not None else []),
                     "LEESMIJ.txt", "README.txt", "verify.html"]
            w.file("LEESMIJ.txt", [notice_nl(manifest, copy, files).encode()])
            w.file("README.txt", [notice_en(manifest, copy, files).encode()])
            w.file(
                "verify.html",
                render_verify_page_chunks(signed.data, signed.signature, copy, device_key,
                                          custody_head),
            )
            os.fsync(pdfd)
        finally:
            os.close(pdfd)
        report = verify_copy(Path(target) / partial, device_key, reading_back=True)
        if not report.ok:
            raise StorageError(
                errno.EIO,
                f"the copy on {target} does not read back correctly: "
                + "; ".join(f.message for f in report.findings),
            )
        _rename_noreplace(tgt.dfd, partial, final)
        published = True
        os.fsync(tgt.dfd)
        return CopyResult(Path(target) / final, final, w.total, copy)
    except OSError as exc:
        if isinstance(exc, StorageError):
            raise
        raise StorageError(
            exc.errno or errno.EIO, f"writing the copy to {target} failed: {exc.strerror or exc}"
        ) from exc
    finally:
        if partial is not None and not published:
            _remove_partial(tgt.dfd, partial)
        tgt.close()
