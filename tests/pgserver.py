"""A throwaway PostgreSQL cluster for one test run.

Without ``CLICKMAP_TEST_PG`` the test session runs its own server: ``initdb`` in a temporary
directory, ``postgres`` listening on a free loopback port (and a Unix socket in the same
directory), durability switched off for speed, everything removed when the session ends.
As root, the cluster belongs to an unprivileged user (``nobody``), since PostgreSQL refuses
to run as root. Nothing is needed beside the clone but the server binaries (Debian:
``postgresql``; ``make system`` installs it).
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text

from tests.prerequisites import missing

# Settings for a cluster whose contents nobody needs after the run.
FAST = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "max_wal_size": "1GB",
}


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, or None when they are not installed.

    ``CLICKMAP_PG_BINDIR`` wins; then ``pg_config --bindir``; then Debian's versioned
    directories (newest first); then the PATH.
    """
    candidates: list[Path] = []
    if os.environ.get("CLICKMAP_PG_BINDIR"):
        candidates.append(Path(os.environ["CLICKMAP_PG_BINDIR"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip():
            candidates.append(Path(found.stdout.strip()))

    def version(path: str) -> int:
        name = Path(path).parent.name
        return int(name) if name.isdigit() else 0

    candidates += [
        Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version)[::-1]
    ]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One PostgreSQL server in a temporary directory; ``url`` is its SQLAlchemy URL."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.home = Path(tempfile.mkdtemp(prefix="clickmap-pg-"))
        self.data = self.home / "data"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._owner: dict[str, Any] = {}
        if os.geteuid() == 0:
            # PostgreSQL will not run as root: the cluster belongs to an unprivileged user.
            nobody = pwd.getpwnam("nobody")
            os.chown(self.home, nobody.pw_uid, nobody.pw_gid)
            self._owner = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            cwd=self.home,
            **self._owner,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        for _attempt in range(3):
            self.port = _free_port()
            settings = {
                **FAST,
                "port": str(self.port),
                "listen_addresses": "127.0.0.1",
                "unix_socket_directories": str(self.home),
            }
            args = [str(self.bindir / "postgres"), "-D", str(self.data)]
            for name, value in settings.items():
                args += ["-c", f"{name}={value}"]
            log = open(self.home / "server.log", "ab")  # noqa: SIM115 - the server keeps it
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,  # a Ctrl-C of the test run is not the server's
                **self._owner,
            )
            log.close()
            if self._wait_ready():
                atexit.register(self.stop)
                return
            self._stop_process()
        raise RuntimeError("PostgreSQL did not start:\n" + self.log_tail())

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            try:
                psycopg.connect(
                    host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                    connect_timeout=2,
                ).close()  # fmt: skip
                return True
            except psycopg.OperationalError:
                time.sleep(0.1)
        return False

    def log_tail(self) -> str:
        path = self.home / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def _stop_process(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: no waiting for clients
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        """Stop the server and remove its directory (idempotent)."""
        self._stop_process()
        shutil.rmtree(self.home, ignore_errors=True)


class PgServer:
    """The run's PostgreSQL server URL: ``CLICKMAP_TEST_PG``, or a cluster started on first use."""

    def __init__(self) -> None:
        self._url: str | None = os.environ.get("CLICKMAP_TEST_PG") or None
        self._cluster: PgCluster | None = None
        self._failure: str | None = None  # nothing to run: skip, or fail under CI
        self._broken: str | None = None  # installed but would not start: always a failure

    def url(self) -> str:
        if self._url is None:
            if self._failure is None:
                self._start()
            if self._broken is not None:
                pytest.fail(self._broken, pytrace=False)
            if self._failure is not None:
                missing(self._failure)
        assert self._url is not None
        return self._url

    def _start(self) -> None:
        bindir = find_bindir()
        if bindir is None:
            self._failure = (
                "PostgreSQL server binaries (initdb, postgres) not found: install them "
                "(Debian: postgresql; make system) or set CLICKMAP_TEST_PG to a server URL"
            )
            return
        cluster = PgCluster(bindir)
        try:
            cluster.start()
        except Exception as exc:
            cluster.stop()
            self._broken = f"could not start a PostgreSQL cluster from {bindir}: {exc}"
            return
        self._cluster = cluster
        self._url = cluster.url

    def new_schema(self, prefix: str) -> tuple[str, str]:
        """A new empty schema: its name and a URL whose search_path is that schema."""
        server_url = self.url()
        schema = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
        server = create_engine(server_url)
        try:
            with server.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        except Exception as exc:
            missing(f"PostgreSQL at {server_url} is unreachable: {exc}")
        finally:
            server.dispose()
        return schema, f"{server_url}?options=-csearch_path%3D{schema}"

    def drop_schema(self, schema: str) -> None:
        server = create_engine(self.url())
        with server.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        server.dispose()

    def stop(self) -> None:
        if self._cluster is not None:
            self._cluster.stop()
