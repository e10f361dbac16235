"""Targets for daemonic processes started with the "spawn" method (they must be importable)."""

from __future__ import annotations

from typing import Any

from winnow.sandbox import Sandbox


def sandbox_len(q: Any) -> None:
    with Sandbox("builtins:len", timeout_s=30) as sb:
        q.put(sb(b"abc"))
