"""A collection stick pulled out mid-collection, for real: a FUSE stick whose process dies in
the middle of a write (fusekit `pull_after`), so the kernel answers the write in flight and
every later request with ECONNABORTED / ENOTCONN, as it does for a USB stick that is gone.

(A device-mapper target switched to `error` would be the block-device version; this VM's
kernel has no device-mapper, and a FUSE mount is the same to the collector: the file system
under the stick's path stops answering mid-write.)

The outcome each test holds: the collection fails and says so (JSON event, the stick light
shows failed), nothing on the device is lost or marked collected or receipted, no custody
entry claims the recording that was being written, and the next collection on a good stick
collects everything still pending."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

from akkoord.collect.receipts import ARCHIVED_FILE, archived_ids, trusted_signing_keys
from akkoord.collect.runner import Collector
from akkoord.consent import CollectionFinished
from archivekit import collect, make_org, provision, put_token
from fusekit import fuse_unavailable, mounted
from storekit import make_kit, record

pytestmark = pytest.mark.skipif(fuse_unavailable() is not None,
                                reason=fuse_unavailable() or "")


@pytest.fixture
def setup():
    kit = make_kit()
    org = make_org(kit.root / "org", kit.org)
    provision(kit, org)
    yield kit, org
    kit.cleanup()


def _tree(kit):
    out = {}
    for rid in kit.state.recording_ids():
        for p in sorted(kit.state.recording_dir(rid).iterdir()):
            out[f"{rid}/{p.name}"] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _collected(kit):
    return [e["recording_id"] for e in kit.custody.entries() if e["type"] == "archive_collected"]


def _size(kit, rid):
    return sum(p.stat().st_size for p in kit.state.recording_dir(rid).iterdir())


def test_a_stick_pulled_mid_write_fails_clearly_and_loses_nothing(setup):
    kit, org = setup
    for i in range(3):
        record(kit, segments=6, seed=i)
        kit.clock.advance(60)
    first, second, _third = kit.state.recording_ids()
    before = _tree(kit)
    backing, mnt = kit.root / "pulled-backing", kit.root / "pulled"
    put_token(org, backing, [kit.identity.fingerprint])
    # device.json, the whole first recording, then half of the second one's container
    pull_after = 4096 + _size(kit, first) + (kit.state.recording_dir(second) /
                                              "recording.akr").stat().st_size // 2
    posted, reports = [], []
    done = threading.Event()

    def post(ev):
        posted.append(ev)
        if isinstance(ev, CollectionFinished):
            done.set()

    c = Collector(kit.state, kit.identity, kit.custody, kit.clock,
                  lambda ev, **f: reports.append((ev, f)), post, lambda: 1.0)
    with mounted(backing, mnt, pull_after=pull_after) as stick:
        assert c.is_collection_stick(stick)
        c.start(stick, None)
        assert done.wait(60)
    finished = [e for e in posted if isinstance(e, CollectionFinished)]
    assert len(finished) == 1 and not finished[0].ok  # the light shows "failed"
    (event, fields), = [r for r in reports if r[0].startswith("collection_")
                        and r[0] != "collection_stick"]
    assert event == "collection_failed"
    assert second in fields["failed"] and _third in fields["failed"]
    assert fields["collected"] == [first]
    # nothing lost, nothing marked: only the recording that was whole before the pull is
    # logged as collected, and nothing is receipted (so nothing may ever be shredded)
    assert _tree(kit) == before
    assert _collected(kit) == [first]
    assert not any(e["type"] == "archive_receipt" for e in kit.custody.entries())
    assert archived_ids(kit.state, trusted_signing_keys(kit.state), kit.identity.fingerprint,
                        kit.clock.wall_epoch()) == set()
    assert not any((kit.state.recording_dir(r) / ARCHIVED_FILE).exists()
                   for r in kit.state.recording_ids())
    # the half-written recording is a .partial folder on the stick, never a finished one
    recs = next((backing / "akkoord-collect").glob("*/recordings"))
    assert (recs / f"{second}.partial").is_dir() and not (recs / second).exists()

    good = kit.root / "good"
    put_token(org, good, [kit.identity.fingerprint])
    again = collect(kit, good)
    assert again.result.ok and sorted(again.result.collected) == sorted([first, second, _third])
    assert _tree(kit) == before


def test_through_the_daemon_a_pulled_stick_says_failed_and_the_next_one_collects(tmp_path):
    from simkit import DEMO_WAV, run_script
    from test_collect_daemon import _of, _setup

    state, org, identity, cfg = _setup(tmp_path)
    backing, mnt, good = tmp_path / "backing", tmp_path / "pulled", tmp_path / "good"
    put_token(org, backing, [identity.fingerprint], now=time.time())
    put_token(org, good, [identity.fingerprint], now=time.time())
    with mounted(backing, mnt, pull_after=8192) as stick:
        script = f"""
        a
        sleep 0.3
        b
        sleep 1.5
        b
        sleep 1.6
        usb {stick}
        sleep 0.3
        a
        sleep 1.5
        usb-remove
        sleep 0.2
        usb {good}
        sleep 0.3
        b
        sleep 1.5
        usb-remove
        quit
        """
        rc, events, err = run_script(state, script, "--config", str(cfg), "--audio-file",
                                     str(DEMO_WAV))
    assert rc == 0, err
    (rec,) = _of(events, "recording_stopped")
    rid = rec["recording_id"]
    (failed,) = _of(events, "collection_failed")
    assert rid in failed["failed"] and failed["collected"] == []
    back = [e for e in _of(events, "state") if e.get("previous") == "collecting"]
    assert back[0]["reason"].startswith("collection failed")  # the stick light: failed
    assert [e["prompt"] for e in _of(events, "say") if e["prompt"].startswith("collect_")
            and e["prompt"] != "collect_confirm"] == ["collect_failed", "collect_done"]
    (done,) = _of(events, "collection_done")
    assert done["collected"] == [rid]
    entries = [json.loads(line)["entry"] for line in state.custody_path.open()]
    collected = [e for e in entries if e["type"] == "archive_collected"]
    assert len(collected) == 1 and str(good) in json.dumps(collected[0])
    assert (state.recording_dir(rid) / "recording.akr").exists()
