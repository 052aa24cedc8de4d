"""Fill the offline verify page (assets/verify.html) with one copy's signed manifest.

The page is one self-contained file. Its data block is a JSON script element the page reads
on load; embedding the manifest means a holder only has to pick the WAV. The same page with
an empty block (`null`) asks for the copy's files instead, so it also works as a generic
checker an organisation can publish next to its device fingerprints.
"""

from __future__ import annotations

import base64
import json
from importlib import resources
from typing import Any

from akkoord.errors import FormatError
from akkoord.store.keys import DevicePublicKey

__all__ = ["PLACEHOLDER", "render_verify_page", "verify_page_template"]

PLACEHOLDER = '<script type="application/json" id="akkoord-copy">null</script>'


def verify_page_template() -> str:
    return resources.files("akkoord").joinpath("assets/verify.html").read_text("utf-8")


def render_verify_page(
    manifest: bytes, signature: bytes, copy: dict[str, Any], device_key: DevicePublicKey
) -> str:
    template = verify_page_template()
    if template.count(PLACEHOLDER) != 1:
        raise FormatError("assets/verify.html: the copy data placeholder is missing")
    data = {
        "manifest": base64.b64encode(manifest).decode(),
        "signature": base64.b64encode(signature).decode(),
        "copy": copy,
        "expected_device_key": base64.b64encode(device_key.raw).decode(),
    }
    # "<" escaped so no value can close the script element early.
    blob = json.dumps(data, sort_keys=True).replace("<", "\\u003c")
    return template.replace(
        PLACEHOLDER, f'<script type="application/json" id="akkoord-copy">{blob}</script>'
    )
