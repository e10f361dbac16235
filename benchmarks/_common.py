"""Helpers shared by the benchmarks: locating ../shared/data and printing markdown tables."""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

# The checkout (benchmarks/ reads tests/ and examples/ from it). It is not put on sys.path:
# winnow's stage folders are imported as installed, `winnow.tasks`, `winnow.filters`, `winnow.flows`.
REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    path = Path(os.environ.get("WINNOW_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        sys.exit(f"benchmark data not found at {path} (set WINNOW_SHARED_DATA to the shared/data folder)")
    return path


def machine() -> str:
    return (f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}")


def markdown_table(rows: list[dict[str, object]]) -> str:
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def pin_to_one_core() -> None:
    """Per-core figures: keep the process (and any BLAS/tokenizer threads) on one CPU."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass
