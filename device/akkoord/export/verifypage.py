"""Fill the offline verify page (assets/verify.html) with one copy's signed manifest, or with
an organisation's signing key (the page the organisation publishes).

The page is one self-contained file with two data blocks the page reads on load:

- `akkoord-copy`: one copy's manifest, signature, copy.json and custody head. Embedding them
  means a holder only has to pick the WAV. Left `null`, the page asks for the copy's files.
- `akkoord-trust`: organisation signing public keys and revocation lists. Only the page an
  organisation publishes itself (`akkoord keys publish-page`) fills it: the page on a stick
  is made by the same hands as the copy, so it can never be the anchor (FORMAT.md §10.6).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

from akkoord.errors import FormatError
from akkoord.store.keys import DevicePublicKey

__all__ = [
    "PLACEHOLDER",
    "TRUST_PLACEHOLDER",
    "render_published_page",
    "render_verify_page",
    "verify_page_template",
]

PLACEHOLDER = '<script type="application/json" id="akkoord-copy">null</script>'
TRUST_PLACEHOLDER = '<script type="application/json" id="akkoord-trust">null</script>'


def verify_page_template() -> str:
    return resources.files("akkoord").joinpath("assets/verify.html").read_text("utf-8")


def _fill(template: str, placeholder: str, element_id: str, data: Any) -> str:
    if template.count(placeholder) != 1:
        raise FormatError(f"assets/verify.html: the {element_id} data placeholder is missing")
    # "<" escaped so no value can close the script element early.
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False).replace("<", "\\u003c")
    return template.replace(
        placeholder, f'<script type="application/json" id="{element_id}">{blob}</script>'
    )


def render_verify_page(
    manifest: bytes,
    signature: bytes,
    copy: dict[str, Any],
    device_key: DevicePublicKey,
    custody_head: dict[str, Any] | None = None,
) -> str:
    data = {
        "manifest": base64.b64encode(manifest).decode(),
        "signature": base64.b64encode(signature).decode(),
        "copy": copy,
        "custody_head": custody_head,
        "expected_device_key": base64.b64encode(device_key.raw).decode(),
    }
    return _fill(verify_page_template(), PLACEHOLDER, "akkoord-copy", data)


def render_published_page(organisation: Any, revocations: Sequence[Any] = ()) -> str:
    """The generic page with `organisation` (an OrgSigningPublicKey) built in as its anchor."""
    data = {
        "organisations": [organisation.to_json()],
        "revocations": [r.to_json() if hasattr(r, "to_json") else r for r in revocations],
    }
    return _fill(verify_page_template(), TRUST_PLACEHOLDER, "akkoord-trust", data)
