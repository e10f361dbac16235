"""Hostile inputs as a dump of billions of pages is certain to contain (issue 20), mixed with
ordinary real pages: compression bombs, lying and exotic charsets, WARC records whose
Content-Length overruns, damaged gzip members, JSONL lines with lone surrogates or a BOM,
Parquet columns of the wrong type. Everything is built from small inputs at test time; the
bombs are built streaming, so building a 16 GiB one costs a few MB.

The pages that stall an HTML parser live in ``hostile_pages``; ``hostile_warc`` here puts those
beside these when that module is there.
"""

from __future__ import annotations

import functools
import gzip
import json
import uuid
from collections.abc import Iterable
from pathlib import Path

import brotli
import pyarrow as pa
import pyarrow.parquet as pq

from helpers import hostile_pages

HOST = "http://hostile.invalid/"
GiB = 1 << 30
_ZEROS = bytes(1 << 24)


# ---- WARC records ----------------------------------------------------------------------------

def warc_record(url: str, body: bytes, headers: dict[str, str] | None = None, overrun: int = 0,
                record_type: str = "response") -> bytes:
    """One uncompressed WARC response record. ``headers`` are HTTP headers (Content-Type
    defaults to text/html); ``overrun`` adds that many bytes to the WARC Content-Length, so the
    record claims bytes of whatever follows it."""
    hdrs = {"Content-Type": "text/html", **(headers or {})}
    http = b"HTTP/1.1 200 OK\r\n" + b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in hdrs.items())
    http += b"\r\n" + body
    head = (
        f"WARC/1.0\r\nWARC-Type: {record_type}\r\n"
        f"WARC-Record-ID: <urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, url)}>\r\n"
        "WARC-Date: 2024-05-01T00:00:00Z\r\n"
        f"WARC-Target-URI: {url}\r\n"
        "Content-Type: application/http; msgtype=response\r\n"
        f"Content-Length: {len(http) + overrun}\r\n\r\n"
    ).encode()
    return head + http + b"\r\n\r\n"


def gzip_member(data: bytes) -> bytes:
    """``data`` as one gzip member, as Common Crawl stores each record."""
    return gzip.compress(data, compresslevel=6)


def gzip_bomb(n_bytes: int = GiB) -> bytes:
    """``n_bytes`` of zeros as concatenated gzip members of 16 MiB each (1 GiB -> about 1 MB);
    a body of several members is valid gzip and every decoder reads them all."""
    member = gzip.compress(_ZEROS, compresslevel=9)
    return member * (n_bytes // len(_ZEROS)) + gzip.compress(bytes(n_bytes % len(_ZEROS)))


@functools.cache
def brotli_bomb(n_bytes: int = 16 * GiB) -> bytes:
    """``n_bytes`` of zeros, brotli-compressed streaming (16 GiB -> about 3 MB in a few seconds;
    cached, since the unit and end-to-end tests use the same one)."""
    c = brotli.Compressor(quality=1, lgwin=24)
    out = [c.process(_ZEROS) for _ in range(n_bytes // len(_ZEROS))]
    return b"".join(out) + c.process(bytes(n_bytes % len(_ZEROS))) + c.finish()


def bomb_records() -> dict[str, bytes]:
    """name -> gzipped WARC record whose body decodes to gigabytes (counted as decoded_too_large)."""
    page = b"<html><body><p>" + b"x" * 100 + b"</p></body></html>"
    return {
        "gzip-bomb": gzip_member(warc_record(HOST + "gzip-bomb", gzip_bomb(),
                                             {"Content-Encoding": "gzip"})),
        "brotli-bomb": gzip_member(warc_record(HOST + "brotli-bomb", brotli_bomb(),
                                               {"Content-Encoding": "br"})),
        "stacked-bomb": gzip_member(warc_record(HOST + "stacked-bomb",
                                                brotli.compress(gzip.compress(page) + gzip_bomb(GiB // 4)),
                                                {"Content-Encoding": "gzip, br"})),
    }


# Labels that are not WHATWG encodings (each would once have reached Python's codecs) and labels
# the bytes contradict. Each page is ordinary English text; decoded right, it is kept.
LYING_CHARSETS = {
    "meta-utf16": ("<meta charset='utf-16'>", None),
    "header-utf16": ("", "utf-16"),
    "ebcdic": ("", "cp037"),
    "unicode-escape": ("<meta charset='unicode_escape'>", None),
    "undefined": ("<meta charset='undefined'>", "undefined"),
    "utf7": ("", "utf-7"),
    "rot13": ("<meta charset=rot13>", None),
}


def charset_records() -> dict[str, bytes]:
    """name -> gzipped WARC record of an ordinary page whose charset label lies or is exotic."""
    out = {}
    for name, (meta, header) in LYING_CHARSETS.items():
        body = (f"<html><head>{meta}<title>{name}</title></head><body><p>This page about {name} is "
                "ordinary English prose, long enough to be main text, with a \\u003cscript\\u003e "
                "escape that must stay text.</p></body></html>").encode()
        ct = f"text/html; charset={header}" if header else "text/html"
        out[f"charset-{name}"] = gzip_member(warc_record(HOST + f"charset-{name}", body, {"Content-Type": ct}))
    return out


def overrun_records(pages: list[tuple[str, bytes]]) -> list[bytes]:
    """Gzipped records of ``pages``; the second's Content-Length claims the third and half the
    fourth record too. All of them must come out (counted once as warc_length_overrun)."""
    plain = [warc_record(url, body) for url, body in pages]
    assert len(plain) >= 4
    plain[1] = warc_record(pages[1][0], pages[1][1], overrun=len(plain[2]) + len(plain[3]) // 2)
    return [gzip_member(r) for r in plain]


def damaged_members(records: list[bytes], every: int = 2) -> list[bytes]:
    """``records`` (gzip members) with a corrupt member after every ``every``-th one."""
    bad = b"\x1f\x8b\x08\x00" + b"\xff" * 60
    out: list[bytes] = []
    for i, r in enumerate(records, 1):
        out.append(r)
        if i % every == 0:
            out.append(bad)
    return out


def real_pages(warc: Path, limit: int = 20) -> list[tuple[str, bytes]]:
    """(url, body) of the first ``limit`` ordinary HTML pages of a real WARC."""
    from winnow.stats import StageStats
    from winnow.storage import open_binary
    from winnow.warc import iter_http_responses
    out = []
    with open_binary(str(warc)) as fh:
        for r in iter_http_responses(fh, StageStats(), warc.name, 10**7):
            if not r.problem and r.status == 200 and r.mime == "text/html" and len(r.body) > 2000:
                out.append((r.url, r.body))
                if len(out) == limit:
                    break
    return out


def hostile_warc(path: Path, ordinary: Path | None = None, with_pages: Iterable[str] = ()) -> dict[str, str]:
    """A WARC with every hostile record of this module (and the named parser-stalling pages of
    ``hostile_pages``) around the records of the real WARC ``ordinary``. Returns name -> the
    reason it must be counted under ("" for records that must come out as documents)."""
    expected = {name: "decoded_too_large" for name in bomb_records()}
    records = list(bomb_records().values())
    charset = charset_records()
    expected.update({name: "" for name in charset})
    records += charset.values()
    records += [hostile_pages.response_record(hostile_pages.HOST + n, hostile_pages.PAGES[n]()) for n in with_pages]
    hostile_pages.write_mixed(path, records, ordinary)
    return expected


# ---- documents -------------------------------------------------------------------------------

def jsonl_with_bad_lines(path: Path, texts: list[str], bom: bool = True) -> dict[str, int]:
    """A JSONL file of ``texts`` (ids doc-0...) with a BOM and bad records between them.
    Returns reason -> how many records must be counted under it."""
    lines = [json.dumps({"id": f"doc-{i}", "text": t}) for i, t in enumerate(texts)]
    bad = [
        '{"id": "surrogate", "text": "x\\ud800y"}',  # valid JSON, not valid Unicode
        '{"id": "surrogate-url", "text": "fine", "url": "http://a/\\udfff"}',
        '{"id": "int-text", "text": 5}',
        '{"id": "list-text", "text": ["a", "b"]}',
        '{"id": "no-text"}',
        "{not json",
    ]
    for i, b in enumerate(bad):
        lines.insert(1 + i * max(1, len(lines) // len(bad)), b)
    data = "\n".join(lines) + "\n"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data.encode("utf-8"))
    return {"bad_text": 1, "bad_field:url": 1, "no_text_field": 3, "bad_json_line": 1}


def parquet_with_bad_columns(folder: Path, texts: list[str]) -> dict[str, int]:
    """Parquet files with a wrong type in each column winnow reads, beside one good file.
    Returns reason -> records to be counted."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(texts)
    ids = [f"pq-{i}" for i in range(n)]
    pq.write_table(pa.table({"id": ids, "text": texts}), folder / "good.parquet")
    pq.write_table(pa.table({"id": ["i1", "i2"], "text": pa.array([1, 2], pa.int64())}), folder / "int-text.parquet")
    pq.write_table(pa.table({"id": ["l1"], "text": pa.array([["a", "b"]])}), folder / "list-text.parquet")
    pq.write_table(pa.table({"id": ["u1", "u2"], "text": ["fine text one", "fine text two"],
                             "url": pa.array([1.5, 2.5])}), folder / "float-url.parquet")
    pq.write_table(pa.table({"id": ["a1", "a2"], "text": ["annotated one", "annotated two"],
                             "url": [HOST + "bad-annotations", HOST + "good-annotations"],
                             "annotations": ["{not json", '{"ok": 1}']}), folder / "bad-annotations.parquet")
    return {"bad_text": 3, "bad_field:url": 2, "bad_annotations": 1}
