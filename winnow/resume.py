"""Resume: one done-marker scheme for every output winnow writes.

A marker is written after its output is in place and records what produced it: the stamps
of the inputs (a raw file's size + ETag/mtime, or the key of an upstream winnow output) and
the settings of every stage that shaped it. Its ``key`` is a digest of both. A rerun skips an
output only when the key it would produce now equals the recorded one, so a changed input,
an edited config or a redone upstream shard makes it redo the work instead of passing off
old results. Keys chain: a derived output's inputs are its upstream outputs' keys. Every
resumable unit (a shard, a dedup or components task, a pack group, the packed manifest) goes
through :func:`resumable`, the one check -> skip -> run -> write cycle, and this is the only
module that knows where markers are (:func:`marker_path`, :func:`prune_shards`).

Layout: the marker of ``DIR/NAME`` is ``DIR/__done__/NAME.json``. The folder name is what both
folder readers skip: pyarrow ignores names starting with ``_`` or ``.``, Hugging Face
``datasets`` ignores hidden names and ``__*`` folders but reads ``_done/`` (``load_dataset("parquet",
data_dir=DIR)`` takes every file under DIR as Parquet). Markers of the 0.2 layout (``_done/``)
are not read: their work is redone once.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from winnow.document import Document
from winnow.inputs import read_documents
from winnow.shards import ShardWriter
from winnow.stats import StageStats
from winnow.storage import StorageError, StorageOptions, filesystem, join, write_bytes_atomic

DONE_DIR = "__done__"
T = TypeVar("T")


def work_key(inputs: Sequence[Any], settings: Mapping[str, Any]) -> str:
    """Digest of what an output depends on (canonical JSON, so dict order does not matter)."""
    blob = json.dumps({"inputs": list(inputs), "settings": settings}, sort_keys=True, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def marker_path(output: str) -> str:
    """Where the marker of an output lives: DIR/__done__/NAME.json, beside the outputs yet outside folder reads."""
    parent, name = posixpath.split(output) if "://" in output else os.path.split(output)
    return join(parent, DONE_DIR, name + ".json")


@dataclass(frozen=True)
class Mismatch:
    """Why an output's marker does not cover this run (for the one-line note a rerun prints)."""

    output: str
    changed_settings: list[str]  # dotted names whose value differs
    inputs_changed: bool

    def describe(self) -> str:
        """The change in one phrase, for the rerun's note."""
        parts = []
        if self.changed_settings:
            parts.append("settings changed: " + ", ".join(self.changed_settings[:6])
                         + (" ..." if len(self.changed_settings) > 6 else ""))
        if self.inputs_changed:
            parts.append("input changed")
        return "; ".join(parts) or "marker from another winnow version"

    @classmethod
    def between(cls, output: str, old: Any, new: Mapping[str, Any]) -> Mismatch:
        """Why an earlier output made with settings ``old`` does not cover settings ``new``
        (no setting differs: its input did)."""
        changed = settings_diff(old, dict(new)) if isinstance(old, dict) else []
        return cls(output, changed, inputs_changed=not changed)


def redo_note(mismatches: Sequence[Mismatch], what: str = "shard(s)", stage: str | None = None) -> str | None:
    """The one line a rerun prints for work it redoes, the same for every stage:
    '3 shard(s) from an earlier run redone: settings changed: lid.keep ["en"] -> ["de"]',
    'pack: 1 output(s) from an earlier run redone: settings changed: pack.seq_len 2048 -> 1024'."""
    if not mismatches:
        return None
    reasons: dict[str, int] = {}
    for m in mismatches:
        reasons[m.describe()] = reasons.get(m.describe(), 0) + 1
    detail = "; ".join(f"{why}" + (f" ({n})" if len(reasons) > 1 else "") for why, n in reasons.items())
    return (f"{stage}: " if stage else "") + f"{len(mismatches)} {what} from an earlier run redone: {detail}"


def settings_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ between two settings dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            out += settings_diff(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    if old != new:
        name = prefix.rstrip(".") or "(all)"
        return [f"{name} {_short(old)} -> {_short(new)}"]
    return []


def _short(v: Any) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


class Marker:
    """The done-marker of one output (a file or a folder of work)."""

    def __init__(self, output: str, storage_options: StorageOptions = None, path: str | None = None) -> None:
        self.output = output
        self.path = path or marker_path(output)
        self.so = storage_options

    def read(self) -> dict[str, Any] | None:
        fs, p = filesystem(self.path, self.so)
        try:
            with fs.open(p, "rb") as fh:
                info = json.loads(fh.read())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return info if isinstance(info, dict) else None

    def check(self, key: str, settings: Mapping[str, Any] | None = None, require_output: bool = True
              ) -> tuple[dict[str, Any] | None, Mismatch | None]:
        """(the record, None) when the output is done for ``key``; (None, why) when an earlier
        run's output exists but does not match; (None, None) when there is nothing yet. A
        marker that does not match is removed: call this only where the output is redone."""
        info = self.read()
        if info is None:
            return None, None
        if require_output:
            fs, out = filesystem(self.output, self.so)
            if not fs.exists(out):
                self.clear()
                return None, None  # marker without data (someone deleted the output): redo it
        if info.get("key") == key:
            return info, None
        # The caller is about to rewrite the output: the old marker goes first, so a run killed
        # midway never leaves it beside new data (a later run with the old settings would skip).
        self.clear()
        return None, Mismatch.between(self.output, info.get("settings") if settings is not None else None,
                                      settings or {})

    def write(self, key: str, record: Mapping[str, Any], settings: Mapping[str, Any] | None = None) -> None:
        info = {**record, "key": key, "output": self.output, "settings": dict(settings or {}),
                "finished_at": datetime.now(UTC).isoformat()}
        write_bytes_atomic(self.path, json.dumps(info, indent=1, default=str).encode(), self.so)

    def clear(self) -> None:
        """Forget the output, so the next run does it again (e.g. rephrase requests that failed)."""
        fs, p = filesystem(self.path, self.so)
        if fs.exists(p):
            fs.rm_file(p)


class Checkpoint(Protocol):
    """What :func:`resumable` needs of a done-marker: :class:`Marker`, or a record kept in the
    output itself (the packed output's manifest)."""

    def check(self, key: str, settings: Mapping[str, Any] | None = None, require_output: bool = True
              ) -> tuple[dict[str, Any] | None, Mismatch | None]: ...

    def write(self, key: str, record: Mapping[str, Any], settings: Mapping[str, Any] | None = None) -> None: ...

    def clear(self) -> None: ...


def resumable(marker: Checkpoint, key: str, run: Callable[[], tuple[T, Mapping[str, Any] | None]],
              skip: Callable[[dict[str, Any]], T | None], *, settings: Mapping[str, Any] | None = None,
              require_output: bool = True, on_redo: Callable[[Mismatch], None] | None = None
              ) -> tuple[T, Mismatch | None]:
    """The one check -> skip -> run -> write cycle of every resumable unit of work.

    When ``marker`` covers ``key``, ``skip(record)`` turns its record into the unit's result
    (None: the record is unusable, do the work). Otherwise ``run()`` does the work, returning
    the result and the record to mark it done with, or None to leave it unmarked so the next
    run retries it; ``on_redo(why)`` hears first when that redoes an earlier run's output.
    Returns the result and, when an earlier run's output was redone, why."""
    done, mismatch = marker.check(key, settings, require_output)
    if done is not None and (found := skip(done)) is not None:
        return found, None
    if mismatch is not None and on_redo is not None:
        on_redo(mismatch)
    result, record = run()
    if record is None:
        marker.clear()
    else:
        marker.write(key, record, settings)
    return result, mismatch


@dataclass(frozen=True)
class ShardRef:
    """A finished document shard: where it is, the key it was made with (the stamp that
    derived outputs record), and how many documents it holds."""

    path: str
    key: str
    rows: int


@dataclass
class ShardResult:
    """What one shard-producing unit of work reports back to the flow."""

    ref: ShardRef | None  # None: written but deliberately not marked done (retry next run)
    stats: dict[str, dict[str, Any]]  # stage -> StageStats.to_dict()
    skipped: bool = False
    mismatch: Mismatch | None = None


def derive_shard(source: ShardRef, out: str, stage: str, settings: Mapping[str, Any],
                 make_docs: Callable[[Iterable[Document], StageStats], Iterable[Document]],
                 storage_options: StorageOptions = None, rows_per_group: int = 2000,
                 retry_if: str | None = None) -> ShardResult:
    """One document shard -> one output shard through ``make_docs(docs, stats)``, skipped when
    its marker says it was made from the same input with the same settings. With ``retry_if``,
    a shard whose stats count that error is written but not marked done, so the next run tries
    it again (e.g. rephrase requests that failed)."""
    key = work_key([source.key], {stage: settings})

    def skip(done: dict[str, Any]) -> ShardResult:
        return ShardResult(ShardRef(out, key, int(done["rows"])), done["stats"], skipped=True)

    def run() -> tuple[ShardResult, dict[str, Any] | None]:
        stats = StageStats()
        with ShardWriter(out, storage_options, rows_per_group=rows_per_group) as writer:
            writer.write_all(make_docs(read_shard(source, storage_options), stats))
        serialised = {stage: stats.to_dict()}
        if retry_if and stats.errors.get(retry_if):
            return ShardResult(None, serialised), None
        return ShardResult(ShardRef(out, key, writer.rows), serialised), {
            "inputs": [source.path], "input_keys": [source.key], "rows": writer.rows, "stats": serialised}

    result, mismatch = resumable(Marker(out, storage_options), key, run, skip, settings={stage: settings})
    return replace(result, mismatch=mismatch)


def finished_shard(path: str, storage_options: StorageOptions = None) -> tuple[ShardRef, dict[str, Any]] | None:
    """A winnow shard that is there and marked done: its ref (the key derived outputs record)
    and its marker record; None when either the file or its marker is missing."""
    info = Marker(path, storage_options).read()
    if info is None or not isinstance(info.get("key"), str) or not isinstance(info.get("rows"), int):
        return None
    fs, p = filesystem(path, storage_options)
    if not fs.exists(p):
        return None
    return ShardRef(path, info["key"], info["rows"]), info


def shard_files(folder: str, storage_options: StorageOptions = None) -> list[str]:
    """The document shards (part-*.parquet) in a folder, sorted; none when it is not there."""
    fs, root = filesystem(folder, storage_options)
    if not fs.exists(root):
        return []
    prefix = folder.split("://", 1)[0] + "://" if "://" in folder else ""
    return sorted(prefix + p if prefix and not p.startswith(prefix) else p
                  for p in fs.glob(posixpath.join(root, "part-*.parquet")))


def derived_from(folder: str, inputs: Sequence[ShardRef], storage_options: StorageOptions = None
                 ) -> tuple[list[tuple[ShardRef, dict[str, Any]]] | None, str | None]:
    """The shards a per-shard stage wrote into ``folder`` from ``inputs`` (one each, in order),
    when every one of them is there, finished and made from exactly that input: (shards, None).
    (None, None) when the folder holds no shard; (None, why) when it holds an out-of-date set."""
    files = shard_files(folder, storage_options)
    if not files:
        return None, None
    if len(files) != len(inputs):
        return None, f"it holds {len(files)} shard(s) for {len(inputs)} input shard(s)"
    out = []
    for path, source in zip(files, inputs, strict=True):
        done = finished_shard(path, storage_options)
        if done is None:
            return None, f"{posixpath.basename(path)} is unfinished"
        if done[1].get("input_keys") != [source.key]:
            return None, f"{posixpath.basename(path)} was made from other input"
        out.append(done)
    return out, None


def group_by_rows(refs: Sequence[ShardRef], target_rows: int) -> list[list[int]]:
    """Consecutive shards in groups of at least ``target_rows`` documents (the last may be
    smaller): a function of the input alone, so work split this way does not depend on workers."""
    groups: list[list[int]] = []
    rows = target_rows
    for k, ref in enumerate(refs):
        if rows >= target_rows:
            groups.append([])
            rows = 0
        groups[-1].append(k)
        rows += ref.rows
    return groups


def read_shard(ref: ShardRef, storage_options: StorageOptions = None) -> Iterator[Document]:
    """The documents of one winnow shard, strictly: a read error or a short read (a truncated
    file, S3 failing midway) raises, so the output derived from it is never written short and
    marked done."""
    stats = StageStats()
    n = 0
    for doc in read_documents(ref.path, stats, storage_options):
        n += 1
        yield doc
    if stats.errors or n != ref.rows:
        problem = ", ".join(f"{k} {v}" for k, v in stats.errors.items()) or "no read error"
        raise StorageError(f"{ref.path}: read {n:,} of its {ref.rows:,} documents ({problem}); "
                           "rerun to retry; a damaged shard is redone once it is removed")


def iter_documents(refs: Iterable[ShardRef], storage_options: StorageOptions = None) -> Iterator[Document]:
    """The documents of several shards, in order (what a corpus stage reads)."""
    for ref in refs:
        yield from read_shard(ref, storage_options)


def prune_shards(folder: str, keep: Iterable[str], storage_options: StorageOptions = None,
                 pattern: str = "part-*.parquet") -> int:
    """Delete shards (and their done-markers) under ``folder`` that this run did not write, e.g.
    part-00011 of an earlier run over more inputs: a folder read must see only this run's data."""
    fs, root = filesystem(folder, storage_options)
    if not fs.exists(root):
        return 0
    keep_names = {posixpath.basename(k) for k in keep}
    removed = 0
    for p in fs.glob(posixpath.join(root, pattern)):
        name = posixpath.basename(p)
        if name in keep_names:
            continue
        fs.rm_file(p)
        marker = marker_path(posixpath.join(root, name))
        if fs.exists(marker):
            fs.rm_file(marker)
        removed += 1
    return removed
