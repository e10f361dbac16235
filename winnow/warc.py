"""WARC response records -> HTTP payloads, tolerant of what real crawls contain.

fastwarc does the WARC framing (fast, handles per-record gzip and quirky headers); the HTTP
layer is parsed here so that a lying header (``Content-Encoding: gzip`` on a body the crawler
already decoded, as in ClueWeb09) costs one record, not the rest of the file.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

from fastwarc.warc import ArchiveIterator, WarcRecordType

from winnow.stats import StageStats

try:  # brotli is a declared dependency; guard anyway so a broken install degrades to one error per record
    import brotli
except ImportError:  # pragma: no cover
    brotli = None


@dataclass(slots=True)
class HttpResponse:
    """One WARC response as the ingest stage needs it; `problem` names why it is unusable."""
    record_id: str
    url: str
    date: datetime | None
    offset: int
    status: int | None
    mime: str | None  # lower-cased, without parameters
    charset: str | None  # from the HTTP Content-Type header, if any
    body: bytes
    declared_length: int  # WARC Content-Length of the whole block
    problem: str | None = None  # set when the record is unusable: the reason to count


def parse_warc_date(value: str | None) -> datetime | None:
    """A WARC-Date as an aware datetime, or None when it is not ISO 8601 (old crawls have odd dates)."""
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _split_http(block: bytes) -> tuple[int | None, dict[str, str], bytes] | None:
    """Split an HTTP response block into (status, lower-cased headers, body)."""
    end, sep_len = block.find(b"\r\n\r\n"), 4
    if end < 0:
        end, sep_len = block.find(b"\n\n"), 2
    if end < 0 or not block.startswith(b"HTTP/"):
        return None
    lines = block[:end].decode("latin-1").splitlines()
    parts = lines[0].split(None, 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            # First occurrence wins: duplicated Content-Type headers are usually a CDN appending a default.
            headers.setdefault(name.strip().lower(), value.strip())
    return status, headers, block[end + sep_len :]


def _dechunk(body: bytes) -> bytes | None:
    out: list[bytes] = []
    pos, n = 0, len(body)
    while pos < n:
        eol = body.find(b"\n", pos)
        if eol < 0:
            return None
        size_field = body[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            return None
        if size == 0:
            return b"".join(out)
        start = eol + 1
        out.append(body[start : start + size])
        pos = start + size
        if body[pos : pos + 2] == b"\r\n":
            pos += 2
        elif body[pos : pos + 1] == b"\n":
            pos += 1
    return b"".join(out)  # missing terminating chunk: keep what arrived


class _TooLarge(Exception):
    """Decoded output passed the caller's limit; decoding stopped there."""


# Output step of the incremental decoders: a bomb costs at most limit + _STEP bytes of memory.
_STEP = 1 << 16


def _inflate(data: bytes, wbits: int, limit: float) -> bytes:
    """zlib/gzip/raw-deflate inflate with a hard output bound, over concatenated gzip members too."""
    out: list[bytes] = []
    size = 0
    while True:
        d = zlib.decompressobj(wbits)
        while not d.eof:
            if not data:
                raise EOFError("compressed stream ended early")
            piece = d.decompress(data, _STEP)
            size += len(piece)
            if size > limit:
                raise _TooLarge
            out.append(piece)
            data = d.unconsumed_tail
        # Like gzip.decompress, read every gzip member; trailing bytes after the last one are ignored.
        data = d.unused_data
        if wbits <= zlib.MAX_WBITS or data[:2] != b"\x1f\x8b":
            return b"".join(out)


def _unbrotli(data: bytes, limit: float) -> bytes:
    if brotli is None:
        raise ValueError("brotli module not available")
    d = brotli.Decompressor()
    out: list[bytes] = []
    size = 0
    try:
        piece = d.process(data, output_buffer_limit=_STEP)
    except TypeError:  # brotli < 1.2 has no output limit: feed input in steps small enough
        return _unbrotli_stepped(d, data, limit)
    while True:
        size += len(piece)
        if size > limit:
            raise _TooLarge
        out.append(piece)
        if d.is_finished() or (not piece and d.can_accept_more_data()):
            break  # done, or all input used up (a truncated stream)
        piece = d.process(b"", output_buffer_limit=_STEP)
    if not d.is_finished():
        raise EOFError("brotli stream ended early")
    return b"".join(out)


def _unbrotli_stepped(d: object, data: bytes, limit: float) -> bytes:
    # Brotli's maximum expansion is about 2**16 per input byte; 16-byte steps keep one step's
    # output near 1 MiB past the limit.
    out: list[bytes] = []
    size = 0
    for i in range(0, len(data), 16):
        piece = d.process(data[i : i + 16])  # type: ignore[attr-defined]
        size += len(piece)
        if size > limit:
            raise _TooLarge
        out.append(piece)
    return b"".join(out)


def _decode_content(body: bytes, encoding: str, limit: float = float("inf")) -> bytes:
    """Undo a Content-Encoding (stacked ones like ``gzip, br`` last-applied first), never
    producing more than ``limit`` bytes: past it, ``_TooLarge`` is raised and decoding stops."""
    for enc in reversed([e.strip() for e in encoding.lower().split(",")]):
        if enc in ("gzip", "x-gzip"):
            body = _inflate(body, 16 + zlib.MAX_WBITS, limit)
        elif enc in ("deflate", "x-deflate"):
            try:
                body = _inflate(body, zlib.MAX_WBITS, limit)
            except zlib.error:
                body = _inflate(body, -zlib.MAX_WBITS, limit)  # raw deflate, as some servers send
        elif enc == "br":
            body = _unbrotli(body, limit)
        elif enc not in ("", "identity", "none"):
            raise ValueError(f"unsupported Content-Encoding {enc!r}")
    return body


def _looks_like_markup(body: bytes) -> bool:
    head = body[:512].lstrip().lower()
    return head.startswith((b"<", b"\xef\xbb\xbf<")) or b"<html" in head


def _mime_and_charset(content_type: str | None) -> tuple[str | None, str | None]:
    if not content_type:
        return None, None
    parts = [p.strip() for p in content_type.split(";")]
    mime = parts[0].lower() or None
    charset = None
    for p in parts[1:]:
        k, _, v = p.partition("=")
        if k.strip().lower() == "charset" and v:
            charset = v.strip().strip("\"'") or None
    return mime, charset


def _to_response(block: bytes, record_id: str, url: str, date: datetime | None, offset: int,
                 declared: int, max_body_bytes: int | None = None) -> HttpResponse:
    resp = HttpResponse(record_id, url, date, offset, None, None, None, b"", declared)
    if len(block) < declared:
        resp.problem = "truncated_record"
        return resp
    split = _split_http(block)
    if split is None:
        resp.problem = "bad_http_header"
        return resp
    resp.status, headers, body = split
    resp.mime, resp.charset = _mime_and_charset(headers.get("content-type"))
    if "chunked" in headers.get("transfer-encoding", "").lower():
        # Some crawlers store the de-chunked body but keep the header: fall back to the raw body.
        body = _dechunk(body) or body
    encoding = headers.get("content-encoding", "")
    if encoding and encoding.lower() not in ("identity", "none"):
        try:
            body = _decode_content(body, encoding,
                                   float("inf") if max_body_bytes is None else max_body_bytes)
        except _TooLarge:
            resp.problem = "decoded_too_large"
            return resp
        except Exception:  # noqa: BLE001 - any codec failure means "body was not encoded as declared"
            if not _looks_like_markup(body):
                resp.problem = "content_decoding_error"
                return resp
    resp.body = body
    return resp


def _not_a_warc(stream: BinaryIO) -> str | None:
    """Why the stream does not start like a (gzipped) WARC file, or None if it does.

    Checked up front because fastwarc's lenient mode reads a non-WARC file as zero records
    without complaint, and a silently empty shard is worse than a counted error.
    """
    try:
        start = stream.tell()
        head = stream.read(1 << 16)
        stream.seek(start)
    except (OSError, ValueError, AttributeError):
        return None  # not seekable: let the parser decide
    if not head:
        return "empty file"
    if head[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 64)
        except zlib.error as exc:
            return f"corrupt gzip header ({exc})"
    elif head[:4] == b"\x28\xb5\x2f\xfd":  # zstd: fastwarc reads it; trust the parser
        return None
    if not head.lstrip(b"\r\n\0").startswith(b"WARC/"):
        return f"does not start with a WARC record (first bytes: {head[:24]!r})"
    return None


def _next_gzip_member(stream: BinaryIO, start: int, limit: int = 1 << 30) -> int | None:
    """Offset of the next gzip member at or after ``start`` that holds a WARC record."""
    chunk_size = 1 << 20
    pos = start
    while pos - start < limit:
        stream.seek(pos)
        chunk = stream.read(chunk_size + 2)
        if len(chunk) < 3:
            return None
        i = chunk.find(b"\x1f\x8b\x08")
        while i >= 0 and i < chunk_size:
            stream.seek(pos + i)
            try:
                head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(stream.read(4096), 8)
            except zlib.error:
                head = b""
            if head.startswith(b"WARC/"):
                return pos + i
            i = chunk.find(b"\x1f\x8b\x08", i + 1)
        pos += chunk_size
    return None


class WarcAbandoned(OSError):
    """A WARC file so damaged that reading gave up before its end: the shard fails (and is
    retried) rather than being marked done with the rest of the file missing."""


# The separator that ends a record, then the next record's version line: inside a block, the
# block's Content-Length ran past its own payload into the following record(s).
_NEXT_RECORD = b"\r\n\r\nWARC/1."
_WARC_HEADERS = re.compile(rb"\r\nWARC-Type:.*\r\nContent-Length:|\r\nContent-Length:.*\r\nWARC-Type:",
                           re.I | re.S)


def _overrun_at(block: bytes) -> int | None:
    """Where, in ``block``, a following WARC record starts (the Content-Length was too large),
    or None. The version line must be followed by WARC headers, so a page quoting
    "WARC/1.0" does not count."""
    i = block.find(_NEXT_RECORD)
    while i >= 0:
        start = i + 4
        if block[start + 7 : start + 10] in (b"0\r\n", b"1\r\n"):
            head = block[start : start + 4096]
            end = head.find(b"\r\n\r\n")
            if end > 0 and _WARC_HEADERS.search(head, 0, end):
                return start
        i = block.find(_NEXT_RECORD, i + 1)
    return None


def _record_at(stream: BinaryIO, offset: int, in_block: int, gzipped: bool) -> int | None:
    """Stream offset of the record found ``in_block`` bytes into the block of the record at
    ``offset``: in a gzipped file it starts the next gzip member; in a plain file it lies after
    this record's WARC headers."""
    if gzipped:
        return _next_gzip_member(stream, offset + 1)
    stream.seek(offset)
    head = stream.read(1 << 16)
    end = head.find(b"\r\n\r\n")
    return None if end < 0 else offset + end + 4 + in_block


def iter_http_responses(stream: BinaryIO, stats: StageStats, source: str,
                        max_record_bytes: int, max_resyncs: int = 1000,
                        max_body_bytes: int | None = None,
                        fail_when_abandoned: bool = True) -> Iterator[HttpResponse]:
    """Yield one ``HttpResponse`` per WARC response/revisit record.

    Records larger than ``max_record_bytes`` are yielded with ``problem="oversized"`` without
    reading their payload. A body whose Content-Encoding decodes to more than ``max_body_bytes``
    is yielded with ``problem="decoded_too_large"``; decoding stops at the limit, so a
    compression bomb costs about ``max_body_bytes`` of memory, not its decoded size. A framing
    error (corrupt gzip member, garbage between records) is counted, and reading resumes at
    the next intact gzip member, so one damaged record does not cost the rest of the file.
    After ``max_resyncs`` resyncs the rest of the file is given up (``warc_abandoned``), and
    ``WarcAbandoned`` is raised unless ``fail_when_abandoned`` is false.

    A record whose Content-Length runs past its payload into the next record is cut where the
    next record starts (counted as ``warc_length_overrun``) and reading resumes there, so the
    records it overlapped are read too, as warcio does.
    """
    problem = _not_a_warc(stream)
    if problem:
        stats.error("not_a_warc", f"{source}: {problem}")
        return
    try:
        gzipped = stream.read(2) == b"\x1f\x8b"
        stream.seek(0)
    except (OSError, ValueError, AttributeError):
        gzipped = False
    n_records = 0
    resyncs = 0
    last = 0
    while True:
        # quirks_mode: old WARC/0.18 dates, NUL padding after truncated records, sloppy headers.
        it = ArchiveIterator(
            stream,
            record_types=WarcRecordType.response | WarcRecordType.revisit,
            parse_http=False,
            quirks_mode=True,
        )
        restart: int | None = None
        try:
            for rec in it:
                n_records += 1
                # stream_pos is the absolute offset in the (compressed) file, also after a resync.
                offset = last = rec.stream_pos
                headers = rec.headers
                url = (headers.get("WARC-Target-URI") or "").strip().strip("<>")
                record_id = (rec.record_id or "").strip("<>") or f"{source}#{offset}"
                date = parse_warc_date(headers.get("WARC-Date"))
                declared = rec.content_length
                if rec.record_type == WarcRecordType.revisit:
                    yield HttpResponse(record_id, url, date, offset, None, None, None, b"",
                                       declared, problem="revisit")
                    continue
                if declared > max_record_bytes:
                    yield HttpResponse(record_id, url, date, offset, None, None, None, b"",
                                       declared, problem="oversized")
                    continue
                block = rec.reader.read()
                cut = _overrun_at(block)
                if cut is not None:
                    stats.error("warc_length_overrun", f"{source}: record {record_id} ({url}): its "
                                "Content-Length runs into the next record; cut there")
                    try:
                        restart = _record_at(stream, offset, cut, gzipped)
                    except (OSError, ValueError):
                        restart = None
                    block = block[: cut - 4]
                    declared = len(block)
                yield _to_response(block, record_id, url, date, offset, declared, max_body_bytes)
                if restart is not None and restart > offset:
                    break
            else:
                break
            stream.seek(restart)
            last = restart
        except (OSError, ValueError, EOFError) as exc:
            stats.error("corrupt_warc", f"{source}: {exc} near offset {last}; skipping to the next "
                                        "intact record")
            try:
                nxt = _next_gzip_member(stream, last + 1)
            except (OSError, ValueError):
                nxt = None
            if nxt is None:
                break
            if resyncs >= max_resyncs:
                stats.counters["warc_response_records"] += n_records
                msg = (f"{source}: gave up after {resyncs} resyncs over damaged gzip members near "
                       f"offset {nxt}; the rest of the file is not read (raise ingest.max_resyncs "
                       "to read on)")
                stats.error("warc_abandoned", msg)
                if fail_when_abandoned:
                    raise WarcAbandoned(msg) from None
                return
            resyncs += 1
            stats.counters["warc_resyncs"] += 1
            stream.seek(nxt)
            last = nxt
    stats.counters["warc_response_records"] += n_records
