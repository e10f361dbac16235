"""One run per output folder: a lock file, created atomically, that names its holder.

Two runs writing one output at once corrupt each other's work (dedup folders removed under a
running task, shards renamed over each other), so a run takes ``OUTPUT/.winnow-lock.json``
before it writes anything and a second run refuses in one line naming the holder. Creation is
exclusive: ``os.link`` of a finished temp file on a local disk, a conditional PUT
(``If-None-Match: *``) on S3. The holder refreshes a heartbeat in the file; a lock is stale when
its process is gone (same host) or its heartbeat is older than ``stale_after_s`` (another host,
or a process that hangs), and a stale lock is taken over with a note.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from winnow.storage import StorageOptions, filesystem, is_local, join, storage_call, write_bytes_atomic

LOCK_NAME = ".winnow-lock.json"
log = logging.getLogger("winnow")
# Locks this process holds, so an interrupted run can release them on its way out.
_held: set[OutputLock] = set()
_held_guard = threading.Lock()


def release_all() -> None:
    """Release every lock this process holds (Ctrl-C: the run exits without unwinding)."""
    with _held_guard:
        held = list(_held)
    for lock in held:
        lock.release()


class LockHeld(RuntimeError):
    """Another live run holds the output folder."""


class OutputVanished(RuntimeError):
    """The output folder (or its lock file) was deleted while the run held it."""


# Called once, from the heartbeat thread, with the message, when a held lock's file is gone:
# the CLI stops the run there (every later write would fail or recreate a partial folder).
_on_vanished: list[Callable[[str], None]] = []


def on_vanished(callback: Callable[[str], None]) -> None:
    """Register what to do when the output of a held lock disappears (see OutputVanished)."""
    _on_vanished.append(callback)


def check_vanished() -> bool:
    """Whether a held lock's file is gone, asked now rather than at the next heartbeat (up to
    15 s away): a stage whose input files were deleted with the folder fails first, and its
    FileNotFoundError must be told as the folder's disappearance, once."""
    with _held_guard:
        held = list(_held)
    found = False
    for lock in held:
        with contextlib.suppress(Exception):
            if lock.read() is None:
                lock._vanish()
                found = True
    return found


def _now() -> float:
    return time.time()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


class OutputLock:
    """Context manager holding the lock of ``output`` for the duration of a run."""

    def __init__(self, output: str, storage_options: StorageOptions = None, stale_after_s: float = 120.0,
                 heartbeat_s: float = 15.0, note: str = "") -> None:
        self.output = output
        self.path = join(output, LOCK_NAME)
        self.so = storage_options
        self.stale_after_s = stale_after_s
        self.heartbeat_s = heartbeat_s
        self.token = uuid.uuid4().hex
        self.note = note
        self.taken_over: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held = False
        self.lost = False  # another run took the lock over while this one held it
        self.vanished: str | None = None  # why the lock file is gone, once it is

    # -- what the lock file says

    def _record(self) -> dict[str, Any]:
        now = _now()
        return {"token": self.token, "host": socket.gethostname(), "pid": os.getpid(), "started": now,
                "heartbeat": now, "command": " ".join(sys.argv)[:300], "note": self.note}

    def read(self) -> dict[str, Any] | None:
        fs, p = filesystem(self.path, self.so)
        try:
            with fs.open(p, "rb") as fh:
                info = json.loads(fh.read())
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {"token": None, "heartbeat": 0}  # unreadable: stale once old enough (mtime unknown)
        return info if isinstance(info, dict) else {"token": None, "heartbeat": 0}

    def is_stale(self, info: dict[str, Any]) -> bool:
        """A lock whose process is gone (same host) or whose heartbeat stopped: a run that was killed."""
        if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int) \
                and not _pid_alive(info["pid"]):
            return True
        return _now() - float(info.get("heartbeat") or 0) > self.stale_after_s

    @staticmethod
    def describe(info: dict[str, Any]) -> str:
        """Who holds the lock, for the one line a refused run prints."""
        age = _now() - float(info.get("heartbeat") or 0)
        who = f"pid {info.get('pid', '?')} on {info.get('host', '?')}"
        started = f", started {_iso(float(info['started']))}" if info.get("started") else ""
        return f"{who}{started}, last heartbeat {age:.0f} s ago" + (f" ({info['note']})" if info.get("note") else "")

    # -- acquire / release

    def _create(self, data: bytes) -> bool:
        """Create the lock file exclusively; False if it exists."""
        fs, p = filesystem(self.path, self.so)
        if is_local(fs):
            os.makedirs(os.path.dirname(p), exist_ok=True)
            tmp = f"{p}.{self.token}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(data)
            try:
                os.link(tmp, p)  # atomic and exclusive: fails if the lock exists
                return True
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
        try:
            fs.pipe_file(p, data, mode="create")
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            text = str(exc)
            # s3fs words a 412 differently depending on the store's reply (no error code at all,
            # only "At least one of the pre-conditions you specified did not hold").
            if "PreconditionFailed" in text or "412" in text or "pre-condition" in text.lower():
                return False
            raise

    def check_free(self) -> None:
        """Raise LockHeld if a live run holds the folder (a quick look before starting work; the
        lock itself is taken by ``acquire``)."""
        holder = storage_call(self.output, "read the output lock", self.read)
        if holder is not None and not self.is_stale(holder):
            raise LockHeld(f"{self.output} is in use by another winnow run ({self.describe(holder)}); wait for it "
                           f"to finish, or if that run is gone delete {self.path}")

    def acquire(self) -> OutputLock:
        """Take the lock or raise LockHeld naming the holder; a stale lock is taken over with a warning."""
        for _ in range(3):
            created = storage_call(self.output, "create the output lock",
                                   lambda: self._create(json.dumps(self._record()).encode()))
            if created:
                self._held = True
                with _held_guard:
                    _held.add(self)
                self._thread = threading.Thread(target=self._beat, name="winnow-lock-heartbeat", daemon=True)
                self._thread.start()
                return self
            holder = self.read()
            if holder is None:
                continue  # released in between: try again
            if not self.is_stale(holder):
                raise LockHeld(
                    f"{self.output} is in use by another winnow run ({self.describe(holder)}); wait for it to "
                    f"finish, or if that run is gone delete {self.path}")
            log.warning("taking over the stale lock of %s (%s)", self.output, self.describe(holder))
            self.taken_over = holder
            self._remove_if(holder.get("token"))
        raise LockHeld(f"{self.output}: could not take the output lock ({self.path}); another run keeps taking it")

    def _remove_if(self, token: str | None) -> None:
        """Delete the lock file if it still holds ``token`` (a newer holder's lock is left alone)."""
        current = self.read()
        if current is None or current.get("token") != token:
            return
        fs, p = filesystem(self.path, self.so)
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(p)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                info = self.read()
                if info is None:
                    self._vanish()
                    return
                if info.get("token") != self.token:
                    self.lost = True
                    log.error("the output lock of %s was taken by another run", self.output)
                    return
                info["heartbeat"] = _now()
                # Whole or not at all (temp + rename locally): a reader never sees a half file,
                # which would look like an unreadable, stale lock.
                write_bytes_atomic(self.path, json.dumps(info).encode(), self.so)
            except Exception as exc:  # noqa: BLE001 - a missed heartbeat is retried; the run goes on
                log.debug("lock heartbeat failed: %s", exc)

    def _vanish(self) -> None:
        """The lock file is gone: the folder was deleted (or the lock inside it). Said once;
        the registered callbacks stop the run."""
        with _held_guard:
            if self not in _held:  # the heartbeat and check_vanished both found it: said once
                return
            _held.discard(self)
        self.vanished = (f"the output folder {self.output} disappeared during the run (its lock file "
                         f"{LOCK_NAME} is gone); nothing more is written there. Rerun the same command to "
                         "start over")
        self._held = False  # nothing of ours to remove any more
        callbacks = list(_on_vanished)
        if not callbacks:
            log.error("%s", self.vanished)
        for callback in callbacks:
            callback(self.vanished)

    def release(self) -> None:
        """Remove the lock if it is still ours (a lock taken over by another run is left alone)."""
        if not self._held:
            return
        self._held = False
        with _held_guard:
            _held.discard(self)
        self._stop.set()
        if self._thread is not None:
            # A beat between its read and its write would put the lock back after removal.
            self._thread.join(timeout=5)
        try:
            self._remove_if(self.token)
        except Exception as exc:  # noqa: BLE001 - a lock left behind is detected as stale later
            log.warning("could not remove the output lock %s: %s", self.path, exc)

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
