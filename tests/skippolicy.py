"""Which skips are allowed: a test may skip only for a reason that starts with a prefix below.

CI (`.ci/run`, env AKKOORD_STRICT_SKIPS=1) fails the run when any test skipped for another
reason: a missing package, browser or vector there means a guarantee went untested, and that
must be red, not a quiet "s". Elsewhere (a laptop, `make test`) such skips are listed loudly at
the end of the run but do not fail it.

Each prefix is a limit of the machine the project cannot install its way out of. To add one,
add a line here AND a row in docs/TESTING.md ("Skips"); start the skip reason with it, then
say what exactly is missing and how to get it, e.g.
`pytest.skip("needs CAP_SYS_ADMIN: mount -t tmpfs refused (not root)")`.
"""

from __future__ import annotations

#: prefix -> why a run may legitimately lack it
ALLOWED_SKIPS: dict[str, str] = {
    "needs CAP_SYS_ADMIN": "mounting (tmpfs, a stick) needs it; a developer's laptop is not root",
    "needs root": "files owned by root can only be created by root",
    "needs FUSE": "/dev/fuse is a device: an unprivileged container may not be given it",
}


def allowed(reason: str) -> bool:
    reason = reason.strip()
    reason = reason.removeprefix("Skipped: ").strip()
    return any(reason.startswith(prefix) for prefix in ALLOWED_SKIPS)
