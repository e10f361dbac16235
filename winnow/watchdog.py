"""Stops a run whose main thread cannot (run as a small process beside it; standard library only).

Python runs a signal handler only when its main thread gets the interpreter lock. A C extension
that holds that lock for minutes (an HTML parser on 100,000 nested tags, a regex) would leave
Ctrl-C and SIGTERM unanswered for as long. The run's C-level signal handler writes the signal
number to a pipe (``signal.set_wakeup_fd``) without needing the lock, and this process reads
it: when the run has not answered within ``grace`` seconds, it stops the run from outside, as
the run's own handler would have (the same one line; workers killed; the local output lock
removed), and lets the signal end it with its usual status.

Usage: ``python watchdog.py PARENT_PID FD GRACE_S LOCK_PATH MESSAGE``; the run writes 0xff to
the pipe when its own handler has taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import sys
import time

HANDLED = 0xFF
# The run's own handler can take a while (stopping a temporary server): give it this long.
HANDLED_DEADLINE_S = 15.0


def descendants(root: int) -> set[int]:
    """Every process below ``root``, from /proc (Linux)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def remove_lock(path: str, pid: int) -> None:
    """The local output lock, if it is the stopped run's (another run's lock is left alone)."""
    if not path:
        return
    with contextlib.suppress(OSError, ValueError):
        with open(path, "rb") as fh:
            info = json.loads(fh.read())
        if isinstance(info, dict) and info.get("pid") == pid and info.get("host") == socket.gethostname():
            os.unlink(path)


def stop(parent: int, signum: int, lock_path: str, message: str) -> None:
    """Freeze the run (so it starts nothing new), kill what it started, release its lock, say
    so, then end it with the signal it was sent."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(parent, signal.SIGSTOP)
    for pid in descendants(parent) - {os.getpid()}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    remove_lock(lock_path, parent)
    if message:
        with contextlib.suppress(OSError):
            os.write(2, message.encode())
    with contextlib.suppress(ProcessLookupError):
        # The run installed its handler to reset after one delivery (SA_RESETHAND): this second
        # signal ends it with the default action, i.e. status 128 + signum.
        os.kill(parent, signum)
        os.kill(parent, signal.SIGCONT)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and os.getppid() == parent:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        if os.getppid() == parent:
            os.kill(parent, signal.SIGKILL)


def main(argv: list[str]) -> None:
    parent, fd, grace, lock_path, message = int(argv[0]), int(argv[1]), float(argv[2]), argv[3], argv[4]
    # A signal to the whole process group reaches this process too: it only acts on what the
    # pipe says, and outlives the run only until it has stopped it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    got: int | None = None
    since = 0.0
    handled = False
    while os.getppid() == parent:
        ready, _, _ = select.select([fd], [], [], 0.25)
        if ready:
            data = os.read(fd, 64)
            if not data:
                return
            handled = handled or HANDLED in data
            for b in data:
                if b in (signal.SIGINT, signal.SIGTERM) and got is None:
                    got, since = b, time.monotonic()
        if got is not None and time.monotonic() - since > (HANDLED_DEADLINE_S if handled else grace):
            stop(parent, got, lock_path, "" if handled else message)
            return


if __name__ == "__main__":
    main(sys.argv[1:])
