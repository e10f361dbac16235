"""A real terminal for tests of what a user sees on one: a command in a tmux pane (its own tmux
server, so a failing test leaves nothing behind), keys sent to it, the screen read back."""

from __future__ import annotations

import contextlib
import re
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path


class Pane:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True).stdout

    def screen(self) -> str:
        """Everything the pane shows, scrollback included, as lines of text."""
        return self._tmux("capture-pane", "-p", "-J", "-S", "-1000", "-t", "main")

    def send(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "main", *keys)

    def wait_for(self, pattern: str, timeout: float = 300) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.screen(), re.M)
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not on the screen after {timeout:.0f} s:\n{self.screen()}")
            time.sleep(0.2)


def have_tmux() -> bool:
    return shutil.which("tmux") is not None


@contextlib.contextmanager
def terminal(command: list[str], env: dict[str, str], cwd: Path, folder: Path, width: int = 160,
             height: int = 50) -> Iterator[Pane]:
    """Run ``command`` in a tmux pane of ``width`` x ``height``; its exit status is printed as
    ``EXIT=N`` on a line of its own after it ends."""
    script = folder / f"term-{uuid.uuid4().hex[:8]}.sh"
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    script.write_text(f"{exports}cd {shlex.quote(str(cwd))}\n{shlex.join(command)}\necho EXIT=$?\nsleep 3600\n")
    socket = f"winnow-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-s", "main", "-x", str(width),
                    "-y", str(height), f"bash --noprofile --norc {shlex.quote(str(script))}"], check=True)
    try:
        yield Pane(socket)
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
