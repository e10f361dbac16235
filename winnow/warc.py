"""WARC response records -> HTTP payloads, tolerant of what real crawls contain.

fastwarc does the WARC framing (fast, handles per-record gzip and quirky headers); the HTTP
layer is parsed here so that a lying header (``Content-Encoding: gzip`` on a body the crawler
already decoded, as in ClueWeb09) costs one record, not the rest of the file.
"""

from __future__ import annotations

import gzip
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


def _decode_content(body: bytes, encoding: str) -> bytes:
    encoding = encoding.lower().strip()
    if encoding in ("gzip", "x-gzip"):
        return gzip.decompress(body)
    if encoding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate, as some servers send
    if encoding == "br":
        if brotli is None:
            raise ValueError("brotli module not available")
        return brotli.decompress(body)
    if encoding in ("", "identity", "none"):
        return body
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


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
                 declared: int) -> HttpResponse:
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
            body = _decode_content(body, encoding)
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


def iter_http_responses(stream: BinaryIO, stats: StageStats, source: str,
                        max_record_bytes: int, max_resyncs: int = 1000) -> Iterator[HttpResponse]:
    """Yield one ``HttpResponse`` per WARC response/revisit record.

    Records larger than ``max_record_bytes`` are yielded with ``problem="oversized"`` without
    reading their payload. A framing error (corrupt gzip member, garbage between records) is
    counted, and reading resumes at the next intact gzip member, so one damaged record does
    not cost the rest of the file.
    """
    problem = _not_a_warc(stream)
    if problem:
        stats.error("not_a_warc", f"{source}: {problem}")
        return
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
                yield _to_response(block, record_id, url, date, offset, declared)
            break
        except (OSError, ValueError, EOFError) as exc:
            stats.error("corrupt_warc", f"{source}: {exc} near offset {last}; skipping to the next "
                                        "intact record")
            try:
                nxt = _next_gzip_member(stream, last + 1)
            except (OSError, ValueError):
                nxt = None
            if nxt is None or resyncs >= max_resyncs:
                break
            resyncs += 1
            stats.counters["warc_resyncs"] += 1
            stream.seek(nxt)
            last = nxt
    stats.counters["warc_response_records"] += n_records
