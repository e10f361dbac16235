"""Prefect's temporary API server as winnow starts it for a run without PREFECT_API_URL: in a
session of its own, with a database of its own, ended when winnow dies. Only the process that
starts the server imports this module (Prefect's server code costs seconds and ~100 MB)."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from prefect.server.api.server import SubprocessASGIServer


class TemporaryServer(SubprocessASGIServer):
    """Prefect's temporary API server, in a session of its own: Ctrl-C in the terminal goes to
    winnow alone, which then stops the server itself, instead of the server dying first and
    every API call of the run retrying against it for minutes."""

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        # Prefect builds the uvicorn command line; only the session of the child is changed here
        # (start-up happens once, before any other thread of the run starts processes).
        popen = subprocess.Popen
        try:
            subprocess.Popen = _NewSessionPopen  # type: ignore[misc]
            return super()._run_uvicorn_command()
        finally:
            subprocess.Popen = popen  # type: ignore[misc]


class _NewSessionPopen(subprocess.Popen):  # type: ignore[type-arg,unused-ignore]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("env") is not None:
            kwargs["env"] = temporary_server_env(kwargs["env"])
        kwargs.setdefault("start_new_session", True)
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        kwargs.setdefault("preexec_fn", _die_with_parent)
        super().__init__(*args, **kwargs)


_DATABASE_SETTINGS = ("PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL")
TEMPORARY_DATABASE = "winnow-temporary-server.db"


def temporary_server_env(env: Mapping[str, str]) -> dict[str, str]:
    """The temporary server's environment: a database of its own (PREFECT_HOME/winnow-
    temporary-server.db) unless one is configured, so ad-hoc runs never show up in the UI of the
    user's own `prefect server start`, whose database is PREFECT_HOME/prefect.db."""
    from prefect.settings import PREFECT_HOME  # noqa: PLC0415 - settings read after the CLI set the env

    env = dict(env)
    if not any(env.get(k) for k in _DATABASE_SETTINGS):
        home = os.path.expanduser(str(PREFECT_HOME.value()))
        os.makedirs(home, exist_ok=True)
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{os.path.join(home, TEMPORARY_DATABASE)}"
    return env


def _die_with_parent() -> None:
    """In the server's process, before exec: SIGTERM when winnow dies. Out of winnow's process
    group, the server would outlive a `kill -9` of the run (Linux; elsewhere it stops at exit)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
