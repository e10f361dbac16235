"""Run one function on many items in a child process, each item under a deadline and a memory bound.

A crawled page can hold a parser for minutes (deep nesting, attribute floods, quadratic
decoders) or take gigabytes. Python cannot stop a thread stuck in C code, so the work runs in
a child process: an item over its deadline gets the child killed (SIGKILL), and the next item
starts a fresh one. The child's address space is capped with ``RLIMIT_AS``, so a page that
wants too much memory fails with ``MemoryError`` in the child instead of taking the machine.

Why a ``subprocess.Popen`` child and not ``multiprocessing``: winnow's process runners may run
shards in daemonic workers (which may not have multiprocessing children), and the threads
runner runs shards in threads of a process that holds Prefect's threads, where ``fork``
without ``exec`` is unsafe. The child runs ``python -m winnow.sandbox TARGET`` and imports
only the module of its target (for extraction: resiliparse, trafilatura), never Prefect.

Protocol: frames of an 8-byte big-endian length and a pickle (the raw bytes of ``bytes``
arguments as frames of their own), over the child's stdin/stdout (the child points its fd 1
at stderr first, so a library that prints cannot corrupt it).
The child dies with its parent (``PR_SET_PDEATHSIG``) and exits when its stdin closes.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
from typing import Any

_HEADER = struct.Struct(">Q")
_READY = "ready"
_PIPE_BYTES = 1 << 20


class SandboxError(Exception):
    """An item the child could not finish; ``reason`` says why ("timeout", "memory", "crash")."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ChildError(Exception):
    """The target raised an ordinary exception for an item (the child goes on)."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name


class Sandbox:
    """``sandbox(*args)`` runs ``TARGET(*args)`` in the child and returns its result.

    ``target`` is ``"package.module:function"``. ``warmup`` are arguments the child calls the
    target with once before it reports ready (imports and caches are then paid at start-up,
    under ``startup_timeout_s``, not in the first item's deadline). The child starts on the
    first call and is reused until an item kills it; :meth:`close` (or leaving the ``with``
    block) ends it. One sandbox serves one thread at a time.
    """

    def __init__(self, target: str, timeout_s: float, memory_mb: int | None = None,
                 warmup: tuple[Any, ...] | None = None, startup_timeout_s: float = 120.0) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner = os.getpid()
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.target = target
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.warmup = warmup
        self.startup_timeout_s = startup_timeout_s
        self.starts = 0  # children started so far (1 + replacements)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # A reader dropped without close (the end of a shard): end its worker with it.
        with contextlib.suppress(Exception):
            self.close()

    @property
    def pid(self) -> int | None:
        """The running child's process id (None before the first item or after a kill)."""
        return self._proc.pid if self._proc is not None else None

    def __call__(self, *args: Any) -> Any:
        if self._owner != os.getpid():
            self._proc = None  # forked: the inherited pipes lead to the parent's worker
        proc = self._proc or self._start()
        deadline = time.monotonic() + self.timeout_s
        try:
            _send(proc, args, deadline)
            reply = _receive(proc, deadline)
        except TimeoutError:
            self._kill()
            raise SandboxError("timeout", f"no result within {self.timeout_s:g} s") from None
        except (EOFError, BrokenPipeError):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(1)  # its own exit status, not our SIGKILL
            self._kill()
            raise SandboxError("crash", f"worker died ({_exit_text(proc)})") from None
        except BaseException:  # Ctrl-C mid-item: a later item must not read this one's answer
            self._kill()
            raise
        kind = reply[0]
        if kind == "ok":
            return reply[1]
        if kind == "memory":
            self._kill()  # a half-failed allocation may leave a C library in a bad state
            limit = f"{self.memory_mb} MB" if self.memory_mb else "memory"
            raise SandboxError("memory", f"over the worker's {limit} limit")
        raise ChildError(reply[1], reply[2])

    def close(self) -> None:
        """End the child (idempotent)."""
        self._kill()

    def _start(self) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "winnow.sandbox", self.target, str(os.getpid()),
               str(self.memory_mb or 0)]
        # Its own process group: a Ctrl-C on the terminal must not reach a child still importing
        # (it would print a traceback); the parent stops its children itself.
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, process_group=0)
        self._proc, self._owner = proc, os.getpid()
        self.starts += 1
        assert proc.stdin is not None and proc.stdout is not None
        os.set_blocking(proc.stdin.fileno(), False)
        for stream in (proc.stdin, proc.stdout):
            _widen_pipe(stream.fileno())
        deadline = time.monotonic() + self.startup_timeout_s
        try:
            _send(proc, self.warmup, deadline)
            reply = _receive(proc, deadline)
        except (TimeoutError, EOFError, BrokenPipeError):
            self._kill()
            raise RuntimeError(f"sandbox worker for {self.target} did not start within "
                               f"{self.startup_timeout_s:g} s ({_exit_text(proc)})") from None
        if reply[0] != _READY:
            self._kill()
            raise RuntimeError(f"sandbox worker for {self.target} failed to start: {reply[1]}: {reply[2]}")
        return proc

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or os.getpid() != self._owner:
            return  # a forked copy of this object: the worker is its parent's, not ours to end
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def _widen_pipe(fd: int) -> None:
    # A page is a few hundred KB: through a 64 KB pipe that is many wake-ups of both sides
    # (1.5 ms for 300 KB); 1 MB (Linux's default maximum for unprivileged users) takes it at once.
    try:
        import fcntl  # noqa: PLC0415 - POSIX only

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_BYTES)
    except (ImportError, OSError):
        pass  # a smaller pipe is slower, not wrong


def _exit_text(proc: subprocess.Popen[bytes]) -> str:
    code = proc.poll()
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _wait(fd: int, deadline: float, *, write: bool) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    # poll, not select: a process with many open files (servers, Dask) has fds past 1024.
    poller = select.poll()
    poller.register(fd, select.POLLOUT if write else select.POLLIN)
    if not poller.poll(max(1, math.ceil(left * 1000))):
        raise TimeoutError


def _send(proc: subprocess.Popen[bytes], obj: Any, deadline: float) -> None:
    assert proc.stdin is not None
    fd = proc.stdin.fileno()
    for part in _message(obj):
        view = memoryview(part).cast("B")
        while view:
            _wait(fd, deadline, write=True)
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                continue


def _message(obj: Any) -> list[Any]:
    """``obj`` as frames: a pickle, then the raw bytes of its ``bytes`` items (out of band,
    pickle protocol 5), so a page goes into the pipe without being copied by pickling."""
    if isinstance(obj, tuple):
        obj = tuple(pickle.PickleBuffer(a) if type(a) is bytes else a for a in obj)
    buffers: list[pickle.PickleBuffer] = []
    meta = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    # Small pieces joined, so an ordinary item is two writes: the pickle and the page.
    parts: list[Any] = [_HEADER.pack(len(meta)) + meta + _HEADER.pack(len(buffers))]
    for buf in buffers:
        raw = buf.raw()
        parts[-1] += _HEADER.pack(raw.nbytes)
        parts += [raw, b""]
    return [p for p in parts if len(p)]


def _receive(proc: subprocess.Popen[bytes], deadline: float) -> Any:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()

    def read(n: int) -> bytes:
        chunks: list[bytes] = []
        while n:
            _wait(fd, deadline, write=False)
            chunk = os.read(fd, min(n, _PIPE_BYTES))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    (size,) = _HEADER.unpack(read(_HEADER.size))
    return pickle.loads(read(size))


# ----------------------------------------------------------------------------- the child


def _read_exact(fd: int, n: int) -> bytes:
    chunks: list[bytes] = []
    while n:
        chunk = os.read(fd, min(n, _PIPE_BYTES))
        if not chunk:
            raise EOFError  # the parent closed the pipe or is gone
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)  # one chunk (the usual case): that object itself, not a copy


def _read_message(fd: int) -> Any:
    def frame() -> bytes:
        return _read_exact(fd, _HEADER.unpack(_read_exact(fd, _HEADER.size))[0])

    meta = frame()
    (n,) = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    # A read-only buffer comes back as the bytes object itself.
    return pickle.loads(meta, buffers=[frame() for _ in range(n)])


def _write_frame(fd: int, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    for part in (_HEADER.pack(len(data)), data):
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view):]


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes  # noqa: PLC0415 - Linux only

        # The kernel kills us when the parent thread that started us ends, even by SIGKILL,
        # also while we are stuck in C code (a closed pipe is only noticed between items).
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        try:  # the first to go when memory runs out
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000\n")
        except OSError:
            pass
    if os.getppid() != parent:  # the parent was gone before prctl took effect
        os._exit(1)


def _child(target: str, parent: int, memory_mb: int) -> None:
    _die_with_parent(parent)
    # Ctrl-C reaches the whole process group; the parent decides, and closes us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inp, out = 0, os.dup(1)
    os.dup2(2, 1)  # print() in a library must not corrupt the frames
    import importlib  # noqa: PLC0415 - child only
    import logging  # noqa: PLC0415 - child only

    # Libraries' warnings about hostile pages would go to stderr via logging's last resort.
    logging.getLogger().addHandler(logging.NullHandler())
    try:
        module, _, name = target.partition(":")
        fn = getattr(importlib.import_module(module), name)
        warmup = _read_message(inp)
        if warmup is not None:
            fn(*warmup)
    except EOFError:
        return
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        _write_frame(out, ("error", type(exc).__name__, str(exc)))
        return
    if memory_mb:
        import resource  # noqa: PLC0415 - child only

        limit = memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    _write_frame(out, (_READY,))
    while True:
        try:
            args = _read_message(inp)
        except EOFError:
            return
        try:
            reply: tuple[Any, ...] = ("ok", fn(*args))
        except MemoryError:
            reply = ("memory",)
        except Exception as exc:  # noqa: BLE001 - an item's error is the parent's to count
            reply = ("error", type(exc).__name__, str(exc))
        del args
        try:
            _write_frame(out, reply)
        except MemoryError:
            _write_frame(out, ("memory",))


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
