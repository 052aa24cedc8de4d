"""A throw-away PostgreSQL server (Debian's `postgresql` package) for tests and `akkoord bench`.

initdb and the server run as an unprivileged user (`nobody` when we are root: PostgreSQL
refuses to run as root), with the data folder and the Unix socket in a temporary folder and no
TCP listener. `Unavailable` says exactly what is missing where it cannot start.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

__all__ = ["TempPostgres", "Unavailable"]


class Unavailable(RuntimeError):
    pass


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


class TempPostgres:
    def __init__(self) -> None:
        initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise Unavailable("initdb/pg_ctl not found; install Debian's `postgresql` package "
                              "(scripts/bootstrap.sh --test does)")
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise Unavailable("psycopg is not installed (pip install 'akkoord[postgresql]')"
                              ) from None
        self.base = Path(tempfile.mkdtemp(prefix="akkoord-pg-"))
        self.data, self.sock = self.base / "data", self.base / "sock"
        self.sock.mkdir()
        self.user = "nobody" if os.geteuid() == 0 else None
        if self.user:
            os.chmod(self.base, 0o755)
            shutil.chown(self.base, self.user)
            shutil.chown(self.sock, self.user)
        self.pg_ctl = pg_ctl
        self.started = False
        r = self._run([initdb, "-D", str(self.data), "-A", "trust", "-U", "akkoord",
                       "--no-sync", "-E", "UTF8"])
        if r.returncode:
            self.stop()
            raise Unavailable(f"initdb failed: {r.stderr.strip()[-500:]}")
        opts = f"-c listen_addresses='' -k {self.sock} -c fsync=off -c full_page_writes=off"
        r = self._run([pg_ctl, "-D", str(self.data), "-o", opts, "-w", "-l",
                       str(self.base / "log"), "start"])
        if r.returncode:
            log = (self.base / "log").read_text(errors="replace")[-800:]
            self.stop()
            raise Unavailable(f"the server did not start: {log}")
        self.started = True

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, cwd=self.base)

    def new_database(self) -> str:
        import psycopg

        name = "t" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url("postgres"), autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def url(self, db: str) -> str:
        return f"postgresql://akkoord@/{db}?host={self.sock}"

    def stop(self) -> None:
        if self.started:
            self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"])
            self.started = False
        shutil.rmtree(self.base, ignore_errors=True)
