"""Per-stage funnel statistics: documents and bytes in/out, and why the rest was removed.

Each shard records one ``StageStats`` per stage that touched it (stage name -> its stats, a
``RunStats`` once merged). They are plain dicts on disk (inside the shard's done-marker), so a
resumed run can rebuild the whole run summary without re-reading data, and summaries from many
machines merge by addition.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from winnow.text_safety import escape_log, markdown

log = logging.getLogger("winnow")
# Reasons and details name URLs and paths from crawls: no control character reaches a terminal.
escape_log(log)

# Each reason is logged once per process, then only counted: a crawl with a million
# non-HTML records must not print a million lines.
_logged: set[str] = set()
_logged_lock = threading.Lock()


def _log_once(level: int, reason: str, detail: str) -> None:
    with _logged_lock:
        if reason in _logged:
            return
        _logged.add(reason)
    log.log(level, "%s: %s [further cases are only counted in the stats]", reason, detail)


@dataclass
class StageStats:
    """One stage's funnel for a shard or a run: they merge by addition, so shards on many machines add up."""
    docs_in: int = 0
    bytes_in: int = 0
    docs_out: int = 0
    bytes_out: int = 0
    # reason -> documents / bytes removed for that reason
    dropped_docs: Counter = field(default_factory=Counter)
    dropped_bytes: Counter = field(default_factory=Counter)
    # reason -> count of problems that are not documents (unreadable file, corrupt gzip, ...)
    errors: Counter = field(default_factory=Counter)
    # free-form counters (record types seen, annotations added, ...)
    counters: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def take_in(self, n_bytes: int) -> None:
        """Count a document entering the stage."""
        self.docs_in += 1
        self.bytes_in += n_bytes
        # Length histograms (power-of-two byte buckets) for the run report: before/after each stage.
        self.counters[f"len_in:{n_bytes.bit_length()}"] += 1

    def keep(self, n_bytes: int) -> None:
        """Count a document leaving the stage (its size after the stage rewrote it)."""
        self.docs_out += 1
        self.bytes_out += n_bytes
        self.counters[f"len_out:{n_bytes.bit_length()}"] += 1

    def drop(self, reason: str, n_bytes: int, detail: str | None = None, bad_input: bool = False) -> None:
        """Count a removed document. ``bad_input`` marks damaged data (logged as a warning)
        rather than an ordinary filtering decision (logged at debug level)."""
        self.dropped_docs[reason] += 1
        self.dropped_bytes[reason] += n_bytes
        if detail:
            _log_once(logging.WARNING if bad_input else logging.DEBUG, f"dropped ({reason})", detail)

    def error(self, reason: str, detail: str) -> None:
        """Count a problem that is not a single document (unreadable file, corrupt stream)."""
        self.errors[reason] += 1
        _log_once(logging.WARNING, reason, detail)

    def merge(self, other: StageStats) -> StageStats:
        """Add another shard's counts to these."""
        self.docs_in += other.docs_in
        self.bytes_in += other.bytes_in
        self.docs_out += other.docs_out
        self.bytes_out += other.bytes_out
        self.dropped_docs.update(other.dropped_docs)
        self.dropped_bytes.update(other.dropped_bytes)
        self.errors.update(other.errors)
        self.counters.update(other.counters)
        self.seconds += other.seconds
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able counts (what done-markers and summary.json hold)."""
        return {
            "docs_in": self.docs_in,
            "bytes_in": self.bytes_in,
            "docs_out": self.docs_out,
            "bytes_out": self.bytes_out,
            "dropped_docs": dict(sorted(self.dropped_docs.items())),
            "dropped_bytes": dict(sorted(self.dropped_bytes.items())),
            "errors": dict(sorted(self.errors.items())),
            "counters": dict(sorted(self.counters.items())),
            "seconds": round(self.seconds, 4),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageStats:
        """Counts read back from a marker or summary.json."""
        return cls(
            docs_in=int(d.get("docs_in", 0)),
            bytes_in=int(d.get("bytes_in", 0)),
            docs_out=int(d.get("docs_out", 0)),
            bytes_out=int(d.get("bytes_out", 0)),
            dropped_docs=Counter(d.get("dropped_docs", {})),
            dropped_bytes=Counter(d.get("dropped_bytes", {})),
            errors=Counter(d.get("errors", {})),
            counters=Counter(d.get("counters", {})),
            seconds=float(d.get("seconds", 0.0)),
        )


# stage name -> stats, in pipeline order
RunStats = dict[str, StageStats]


def merge_runs(parts: list[dict[str, dict[str, Any]]]) -> RunStats:
    """Merge serialised per-shard stats (``{stage: StageStats.to_dict()}``) in stage order."""
    out: RunStats = {}
    for part in parts:
        for stage, d in part.items():
            out.setdefault(stage, StageStats()).merge(StageStats.from_dict(d))
    return out


def plural(n: int, noun: str, plural_form: str | None = None) -> str:
    """``1 document``, ``2 documents``, ``1,000 documents``: every count a user reads."""
    return f"{n:,} {noun if n == 1 else plural_form or noun + 's'}"


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n}"


def funnel_rows(stats: RunStats) -> list[dict[str, str]]:
    """One row per stage and one per drop/error reason: the funnel as a table."""
    rows: list[dict[str, str]] = []
    for stage, s in stats.items():
        kept = f"{100 * s.docs_out / s.docs_in:.1f}%" if s.docs_in else "-"
        rows.append(
            {
                "stage": stage,
                "what": "total",
                "docs_in": f"{s.docs_in:,}",
                "docs_out": f"{s.docs_out:,}",
                "kept": kept,
                "bytes_in": _fmt_bytes(s.bytes_in),
                "bytes_out": _fmt_bytes(s.bytes_out),
            }
        )
        for reason, n in s.dropped_docs.most_common():
            rows.append(
                {
                    "stage": stage,
                    "what": f"dropped: {reason}",
                    "docs_in": "",
                    "docs_out": f"-{n:,}",
                    "kept": "",
                    "bytes_in": "",
                    "bytes_out": f"-{_fmt_bytes(s.dropped_bytes.get(reason, 0))}",
                }
            )
        for reason, n in s.errors.most_common():
            rows.append(
                {"stage": stage, "what": f"error: {reason}", "docs_in": "", "docs_out": f"{n:,}",
                 "kept": "", "bytes_in": "", "bytes_out": ""}
            )
    return rows


def funnel_markdown(stats: RunStats) -> str:
    """The funnel as Markdown (summary.md, the Prefect artifact): a table of five short columns
    per stage (it fits the Prefect UI at 1,400 px), then why documents were removed, as a list.
    Every value is escaped: reasons can carry names from data (an evaluation set's benchmark)."""
    if not stats:
        return "_no documents processed_\n"
    lines = ["| stage | docs in | docs out | kept | bytes out |", "|---|--:|--:|--:|--:|"]
    removed: list[str] = []
    for stage, s in stats.items():
        kept = f"{100 * s.docs_out / s.docs_in:.1f}%" if s.docs_in else "-"
        lines.append(f"| {markdown(stage)} | {s.docs_in:,} | {s.docs_out:,} | {kept} | {_fmt_bytes(s.bytes_out)} |")
        removed += [f"- {markdown(stage)} dropped: {markdown(reason)}: {plural(n, 'document')} "
                    f"({_fmt_bytes(s.dropped_bytes.get(reason, 0))})" for reason, n in s.dropped_docs.most_common()]
        removed += [f"- {markdown(stage)} error: {markdown(reason)}: {n:,}" for reason, n in s.errors.most_common()]
    if removed:
        lines += ["", "Removed, by reason:", "", *removed]
    return "\n".join(lines) + "\n"
