"""Hostile HTML pages, as a crawl of billions of pages is certain to contain, and WARC records
that carry them beside ordinary ones.

Each page stalls or bloats an HTML parser or a charset decoder (measured on 2 cores without a
guard, issue 20): resiliparse takes minutes on deep or unclosed nesting and on one element's
attribute flood (quadratic), trafilatura on attribute and element floods (up to 1.45 GB), and
Python's punycode decoder is quadratic in the page length.
"""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterable
from pathlib import Path

_BODY = b"<html><head><title>t</title></head><body>"
_END = b"</body></html>"


def nested_divs(n: int = 100_000) -> bytes:
    """``n`` nested ``<div>``s around one word (1.1 MB at 100k)."""
    return _BODY + b"<div>" * n + b"deep" + b"</div>" * n + _END


def unclosed_divs(n: int = 100_000) -> bytes:
    """``n`` ``<div>``s never closed (0.5 MB at 100k)."""
    return _BODY + b"<div>" * n + b"open"


def attribute_flood(n: int = 200_000) -> bytes:
    """One element with ``n`` distinct attributes (3.4 MB at 200k)."""
    attrs = b" ".join(b"a%d=x" % i for i in range(n))
    return _BODY + b"<div " + attrs + b">flood</div>" + _END


def tiny_elements(n: int = 200_000) -> bytes:
    """``n`` tiny inline elements (3 MB at 200k)."""
    return _BODY + b"<p>" + b"<b>x</b><i>y</i>" * (n // 2) + b"</p>" + _END


def elements_with_attributes(n: int = 10_000, attrs: int = 100) -> bytes:
    """``n`` elements with ``attrs`` attributes each (9 MB at 10k x 100)."""
    one = b"<a " + b" ".join(b"k%d=%d" % (i, i) for i in range(attrs)) + b">w</a>"
    return _BODY + b"<p>" + one * n + b"</p>" + _END


def punycode_charset(n: int = 2_000_000) -> bytes:
    """A ``<meta charset="punycode">`` page (Python's punycode decoder is quadratic)."""
    return b'<meta charset="punycode">-' + b"a" * n


# name -> page; the names are the URLs' last path segment in hostile_warc()
PAGES = {
    "nested-divs": nested_divs,
    "unclosed-divs": unclosed_divs,
    "attribute-flood": attribute_flood,
    "tiny-elements": tiny_elements,
    "elements-with-attributes": elements_with_attributes,
    "punycode-charset": punycode_charset,
}

HOST = "http://hostile.invalid/"


def response_record(url: str, body: bytes, content_type: bytes = b"text/html", headers: bytes = b"") -> bytes:
    """One gzip-compressed WARC response record (a gzip member of its own, as in Common Crawl);
    ``headers`` are extra HTTP header lines, each ending in CRLF."""
    http = (b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type + b"\r\n" + headers
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    head = (
        b"WARC/1.0\r\nWARC-Type: response\r\n"
        + b"WARC-Record-ID: <urn:uuid:%s>\r\n" % str(uuid.uuid5(uuid.NAMESPACE_URL, url)).encode()
        + b"WARC-Date: 2024-05-01T00:00:00Z\r\n"
        + b"WARC-Target-URI: " + url.encode() + b"\r\n"
        + b"Content-Type: application/http; msgtype=response\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(http)
    )
    return gzip.compress(head + http + b"\r\n\r\n", compresslevel=1)


def write_mixed(path: Path, records: list[bytes], ordinary: Path | None = None) -> Path:
    """``records`` around every record of the real WARC ``ordinary`` (half before it, the rest
    after it), so ordinary pages are read by workers that replaced killed ones."""
    half = (len(records) + 1) // 2
    with open(path, "wb") as out:
        out.writelines(records[:half])
        if ordinary is not None:
            out.write(ordinary.read_bytes())
        out.writelines(records[half:])
    return path


def hostile_warc(path: Path, ordinary: Path | None = None, names: Iterable[str] = PAGES) -> Path:
    """A WARC with the named hostile pages (URL ``HOST + name``) mixed into the real WARC
    ``ordinary`` (see :func:`write_mixed`)."""
    return write_mixed(path, [response_record(HOST + name, PAGES[name]()) for name in names], ordinary)
