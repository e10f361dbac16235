"""Inputs: the files a run reads (listing, grouping, change stamps) and the readers that turn
JSONL and Parquet files into Documents (WARC goes through the ingest stage)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import posixpath
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from winnow.document import Document, record_problem, table_to_documents
from winnow.stats import StageStats
from winnow.storage import InputError, StorageError, StorageOptions, filesystem, is_local, open_binary, storage_call
from winnow.warc import parse_warc_date

WARC_SUFFIXES = (".warc", ".warc.gz", ".warc.zst")  # ARC (pre-2009 format) is not supported
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".ndjson", ".ndjson.gz")
PARQUET_SUFFIXES = (".parquet",)
WET_WAT_SUFFIXES = (".wet.gz", ".wat.gz", ".wet", ".wat")


# ----------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class InputFile:
    """An input file as the listing saw it. ``stamp`` changes when the file does (size plus
    ETag or modification time), so done-markers notice a replaced input."""

    path: str
    size: int
    stamp: str


@dataclass
class Listing:
    """The input files of a run, and the files under its input paths that cannot be inputs
    (reported, not silently dropped)."""
    files: list[InputFile]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)

    def skipped_summary(self, limit: int = 3) -> str | None:
        """'skipped 4 file(s): 3 unsupported format (.txt, .html), 1 WET/WAT (no HTML)', or None."""
        if not self.skipped:
            return None
        by_reason: dict[str, list[str]] = {}
        for path, why in self.skipped:
            by_reason.setdefault(why, []).append(path)
        parts = []
        for why, paths in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
            shown = ", ".join(posixpath.basename(p) for p in paths[:limit]) + (", ..." if len(paths) > limit else "")
            parts.append(f"{len(paths)} {why} ({shown})")
        return f"skipped {len(self.skipped)} file(s): " + "; ".join(parts)


def input_format(path: str) -> str:
    """The reader a file needs, from its name; an unknown suffix is an InputError naming the formats."""
    name = path.lower()
    if name.endswith(WARC_SUFFIXES):
        return "warc"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise InputError(
        f"{path}: unsupported input format (expected one of "
        f"{', '.join(WARC_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES)})"
    )


def _skip_reason(path: str) -> str | None:
    name = posixpath.basename(path).lower()
    if name.startswith((".", "_")):
        return "hidden or metadata file"
    if name.endswith(WET_WAT_SUFFIXES) or ".wet." in name or ".wat." in name:
        return "WET/WAT file (no HTML)"
    try:
        input_format(path)
    except InputError:
        return "unsupported format"
    return None


def path_stamps(patterns: Sequence[str], storage_options: StorageOptions = None) -> list[list[str]]:
    """[path, stamp] of every file that files, folders (recursive) or globs name, sorted; a
    name that matches nothing is stamped "missing" (the stage's check says so before work).
    Done-markers carry these, so an edited list or a retrained model is never passed off."""
    files: list[list[str]] = []
    for pattern in patterns:
        fs, root = filesystem(pattern, storage_options)
        if any(c in root for c in "*?["):
            entries = fs.glob(root, detail=True)
        elif fs.isdir(root):
            entries = fs.find(root, detail=True)
        else:
            entries = {root: fs.info(root)} if fs.exists(root) else {}
        if not entries:
            files.append([pattern, "missing"])
        for path, info in sorted(entries.items()):
            if info.get("type") != "directory":
                files.append([path, _stamp(info)])
    return files


def _stamp(info: dict[str, Any]) -> str:
    version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified") or ""
    return f"{info.get('size', 0)}:{str(version).strip(chr(34))}"


def list_inputs(patterns: Iterable[str], storage_options: StorageOptions = None) -> Listing:
    """Expand files, directories (recursive) and globs into a sorted list of input files, with
    sizes and change stamps taken from the listing itself (one request per folder on S3, not
    one per file). Files that cannot be inputs are reported in ``skipped`` with the reason;
    naming one explicitly, or a pattern that matches nothing usable, is an error."""
    found: dict[str, InputFile] = {}
    skipped: list[tuple[str, str]] = []
    for pattern in patterns:
        fs, root = filesystem(pattern, storage_options)
        prefix = pattern.split("://", 1)[0] + "://" if "://" in pattern else ""

        def listed(root: str = root, fs: fsspec.AbstractFileSystem = fs,
                   pattern: str = pattern) -> dict[str, dict[str, Any]]:
            if any(c in root for c in "*?["):
                entries = dict(fs.glob(root, detail=True))
                if not entries:
                    _check_bucket(fs, root, pattern)
                return entries
            if fs.isdir(root):
                return _find_all(fs, root, pattern)
            if fs.exists(root):
                input_format(root)  # a file named explicitly must be readable as input
                return {root: fs.info(root)}
            _check_bucket(fs, root, pattern)
            raise InputError(f"{pattern}: no such file or directory")

        entries = storage_call(pattern, "list the input", listed)
        usable = 0
        base = root.rstrip("/") + "/"
        for path, info in sorted(entries.items()):
            if info.get("type") == "directory":
                continue
            full = prefix + path if prefix and not path.startswith(prefix) else path
            folders = path[len(base):].split("/")[:-1] if path.startswith(base) else []
            if any(part.startswith("_") for part in folders):
                # Metadata folders by the convention pyarrow and Spark follow (winnow's done-markers,
                # _decontam/, _temporary/): never inputs, and not worth a line.
                continue
            why = "in a hidden folder" if any(part.startswith(".") for part in folders) else _skip_reason(path)
            if why:
                skipped.append((full, why))
                continue
            usable += 1
            found[full] = InputFile(full, int(info.get("size") or 0), _stamp(info))
        if not usable:
            raise InputError(f"{pattern}: matched no WARC, JSONL or Parquet files"
                             + (f" ({Listing([], skipped).skipped_summary()})" if skipped else ""))
    return Listing([found[k] for k in sorted(found)], skipped)


def _check_bucket(fs: fsspec.AbstractFileSystem, root: str, pattern: str) -> None:
    """On an object store, a path in a bucket that does not exist says so (as the output check
    does), not "no such file"."""
    if is_local(fs) or "://" not in pattern:
        return
    bucket = root.split("/", 1)[0]
    if bucket and not fs.exists(bucket):
        raise StorageError(f"{pattern}: bucket {bucket!r} does not exist (winnow never creates buckets)")


def _find_all(fs: fsspec.AbstractFileSystem, root: str, pattern: str) -> dict[str, dict[str, Any]]:
    """Every file under a folder. fsspec's walk leaves out a sub-folder it cannot read without a
    word; locally that is an InputError naming the folder, since its files would be missing."""
    if is_local(fs):
        # fsspec's on_error does not reach its recursion (fsspec 2026.9), so walk once more here.
        def unreadable(exc: OSError) -> None:
            raise InputError(f"{pattern}: cannot read folder {exc.filename or '?'} "
                             f"({exc.strerror or exc}); its files would be left out")
        for _ in os.walk(root, onerror=unreadable):
            pass
    return dict(fs.find(root, detail=True))


def group_inputs(files: Sequence[InputFile], target_mb: float) -> list[list[InputFile]]:
    """Consecutive files grouped until a group holds ``target_mb`` MB (0: one file per group);
    sizes come from the listing."""
    if target_mb <= 0:
        return [[f] for f in files]
    groups: list[list[InputFile]] = []
    size = 0.0
    for f in files:
        n = f.size / 1e6
        if not groups or size + n > target_mb:
            groups.append([])
            size = 0.0
        groups[-1].append(f)
        size += n
    return groups


# ----------------------------------------------------------------------------- readers


def stable_id(*parts: object) -> str:
    """A document id for inputs without one: the same for the same source position on every run."""
    return hashlib.sha1("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def _is_damage(exc: BaseException) -> bool:
    """True for an error that means the file's bytes are damaged (a truncated gzip stream, a
    corrupt Parquet footer); False for one that means it could not be read (no permission, the
    network, a disk error: errno set). Damage is counted and the file's good part kept; the
    rest fails the shard, which is retried and never marked done with documents missing."""
    if isinstance(exc, (EOFError, zlib.error, pa.ArrowInvalid)):
        return True
    return isinstance(exc, OSError) and exc.errno is None and not isinstance(
        exc, (PermissionError, FileNotFoundError, IsADirectoryError, ConnectionError, TimeoutError))


def _count_bad(stats: StageStats, where: str, reason: str) -> None:
    # The record's position only: its text may be anything (and is often the problem).
    stats.error(reason, f"{where}: record skipped ({reason})")


def read_jsonl(path: str, stats: StageStats, storage_options: StorageOptions = None,
               text_field: str = "text", id_field: str = "id") -> Iterator[Document]:
    """JSON lines -> Documents. Unknown scalar fields are kept as ``meta.*`` annotations. A line
    that cannot be a document (not JSON, no string text, a lone surrogate) is counted and
    skipped; a UTF-8 byte-order mark at the start is skipped."""
    with open_binary(path, storage_options) as raw:
        fh: Any = gzip.GzipFile(fileobj=raw) if path.lower().endswith(".gz") else raw
        line_no = 0
        try:
            for line_no, line in enumerate(fh, 1):
                if line_no == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]  # written by Windows tools; json.loads rejects it
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line.decode("utf-8"))
                except UnicodeDecodeError:
                    stats.error("non_utf8_line", f"{path}:{line_no} is not UTF-8; line skipped")
                    continue
                except json.JSONDecodeError as exc:
                    stats.error("bad_json_line", f"{path}:{line_no}: {exc}; line skipped")
                    continue
                if not isinstance(obj, dict) or not isinstance(obj.get(text_field), str):
                    stats.error("no_text_field", f"{path}:{line_no}: no string field {text_field!r}")
                    continue
                doc_id = obj.get(id_field)
                meta = {
                    f"meta.{k}": v for k, v in obj.items()
                    if k not in (text_field, id_field, "url", "crawl_date", "date")
                    and isinstance(v, (str, int, float, bool))
                }
                date = obj.get("crawl_date") or obj.get("date")
                doc = Document(
                    id=str(doc_id) if doc_id is not None else stable_id(path, line_no),
                    text=obj[text_field],
                    url=obj.get("url") if isinstance(obj.get("url"), str) else None,
                    crawl_date=parse_warc_date(date if isinstance(date, str) else None),
                    source_file=path,
                    source_offset=line_no,
                    annotations=meta,
                )
                reason = record_problem(doc)
                if reason:
                    _count_bad(stats, f"{path}:{line_no}", reason)
                    continue
                yield doc
        except (OSError, EOFError, zlib.error) as exc:
            if not _is_damage(exc):
                raise
            stats.error("corrupt_input", f"{path}: {exc} (after line {line_no}; earlier lines kept)")


def read_parquet(path: str, stats: StageStats, storage_options: StorageOptions = None,
                 batch_size: int = 1024) -> Iterator[Document]:
    """Documents from a Parquet file. A file without a text column or a corrupt one is counted,
    not raised; so is each row that cannot be a document (``table_to_documents``). A file that
    cannot be read (permissions, network) raises: its shard fails and is retried."""
    with open_binary(path, storage_options) as fh:
        row = 0

        def bad(i: int, reason: str) -> None:
            _count_bad(stats, f"{path}: row {row + i}", reason)

        try:
            pf = pq.ParquetFile(fh)
            if "text" not in pf.schema_arrow.names:
                stats.error("no_text_field", f"{path}: Parquet file has no 'text' column")
                return
            for batch in pf.iter_batches(batch_size=batch_size):
                yield from table_to_documents(pa.Table.from_batches([batch]), bad)
                row += batch.num_rows
        except (OSError, pa.ArrowException) as exc:
            if not _is_damage(exc) and not isinstance(exc, pa.ArrowException):
                raise
            stats.error("corrupt_input", f"{path}: {exc}")


def read_documents(path: str, stats: StageStats | None = None,
                   storage_options: StorageOptions = None) -> Iterator[Document]:
    """Documents from a JSONL or Parquet shard (WARC needs the ingest stage)."""
    stats = stats if stats is not None else StageStats()
    fmt = input_format(path)
    if fmt == "jsonl":
        return read_jsonl(path, stats, storage_options)
    if fmt == "parquet":
        return read_parquet(path, stats, storage_options)
    raise InputError(f"{path}: WARC input must go through the ingest stage")
