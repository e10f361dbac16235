"""Real servers and processes for integration tests: a Prefect API server (SQLite or
PostgreSQL), PostgreSQL, a TCP proxy that can fail, and the winnow CLI in a subprocess.

Each server is a separate process group started here and stopped by the caller (context
managers), so a failing test never leaves a server running. Tests get these through the
fixtures in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import fsspec
import httpx
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_group(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def prefect_env(home: Path, api_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_UI_ENABLED="false", PYTHONUNBUFFERED="1", **extra)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


class ApiUrl(str):
    """A server's API URL that also knows the server's home folder (its log is there)."""

    home: Path


@contextlib.contextmanager
def prefect_server(home: Path, database_url: str | None = None, timeout: float = 120,
                   extra: dict[str, str] | None = None) -> Iterator[ApiUrl]:
    """`prefect server start` on a free port; yields its API URL."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    extra = {**(extra or {}), **({"PREFECT_API_DATABASE_CONNECTION_URL": database_url} if database_url else {})}
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=prefect_env(home, **extra), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = ApiUrl(f"http://127.0.0.1:{port}/api")
    url.home = home
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited: {(home / 'server.log').read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server not healthy after {timeout}s")
            time.sleep(0.5)
        yield url
    finally:
        stop_group(proc)
        log.close()


def find_postgres_bin() -> Path | None:
    initdb = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1:]), None)
    return Path(initdb).resolve().parent if initdb else None


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stdout[-2000:]} {proc.stderr[-2000:]}")


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free port; yields an asyncpg SQLAlchemy URL.

    PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user that
    Debian's package creates."""
    pg_bin = find_postgres_bin()
    if pg_bin is None:
        raise FileNotFoundError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    as_user: list[str] = []
    data = Path(tempfile.mkdtemp(prefix="winnow-pg-"))  # not under pytest's root-only tmp dir
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(data, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    try:
        _run([*as_user, str(pg_bin / "initdb"), "-D", str(data / "db"), "-U", "winnow", "--auth=trust",
                        "-E", "UTF8"])
        _run([*as_user, str(pg_bin / "pg_ctl"), "start", "-D", str(data / "db"), "-w", "-t", "60",
                        "-l", str(data / "server.log"),
                        "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"])
        try:
            yield f"postgresql+asyncpg://winnow@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([*as_user, str(pg_bin / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "-w", "stop"],
                           capture_output=True)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def winnow(*args: str, env: dict[str, str], timeout: float = 600, cwd: Path | str = REPO,
           check: bool = True) -> subprocess.CompletedProcess:
    """The installed CLI in a subprocess, as a user runs it."""
    proc = subprocess.run([str(BIN / "winnow"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def output_of(root: str, storage_options: dict | None = None) -> dict:
    """What a run produced, independent of where it ran: the deduplicated documents and the
    packed sequences (tokens, in order)."""
    fs, _, (base,) = fsspec.get_fs_token_paths(root, storage_options=storage_options or {})
    docs = []
    for path in sorted(fs.glob(f"{base}/deduped/*.parquet")):
        with fs.open(path, "rb") as f:
            t = pq.read_table(f, columns=["url", "text"])
        docs += list(zip(t.column("url").to_pylist(), t.column("text").to_pylist()))
    sequences = []
    for path in sorted(fs.glob(f"{base}/packed/*.parquet")):
        with fs.open(path, "rb") as f:
            sequences += pq.read_table(f, columns=["input_ids"]).column("input_ids").to_pylist()
    summary = json.loads(fs.cat_file(f"{base}/summary.json"))
    return {"docs": sorted(docs), "sequences": sequences, "rows": summary["rows"], "dedup": summary["dedup"]}


class FaultProxy:
    """A TCP proxy in front of a server (here: the moto S3 server) that can go down and come back,
    or answer slowly: an S3 outage without losing the bucket's contents."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.delay = 0.0
        self._down = threading.Event()
        self._conns: list = []
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", self.port))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def down(self) -> None:
        """Refuse new connections and cut the open ones, as a crashed server would."""
        self._down.set()
        with self._lock:
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.close()
            self._conns.clear()

    def up(self) -> None:
        self._down.clear()

    def close(self) -> None:
        self._stop.set()
        self.down()
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            if self._down.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data or self._down.is_set():
                    break
                if self.delay:
                    time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()
