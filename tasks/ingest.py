"""Ingest stage: WARC HTTP responses -> Documents with extracted main text."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from filters.url import UrlFilter, read_list_file
from winnow.config import IngestConfig
from winnow.document import Document
from winnow.extract import decode_html, get_extractor
from winnow.shardio import open_binary
from winnow.stats import StageStats
from winnow.warc import HttpResponse, iter_http_responses

STAGE = "ingest"


def build_url_filter(cfg: IngestConfig) -> UrlFilter:
    uf = cfg.url_filter
    domains = list(uf.blocked_domains)
    urls = list(uf.blocked_urls)
    if uf.blocked_domains_file:
        domains += read_list_file(uf.blocked_domains_file)
    if uf.blocked_urls_file:
        urls += read_list_file(uf.blocked_urls_file)
    return UrlFilter(uf.allowed_schemes, uf.max_length, domains, urls)


def _sniff_html(body: bytes) -> bool:
    head = body[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"\xef\xbb\xbf<!doctype html", b"\xef\xbb\xbf<html")) \
        or b"<html" in head or b"<body" in head


def ingest(responses: Iterable[HttpResponse], cfg: IngestConfig, stats: StageStats,
           url_filter: UrlFilter | None = None, source: str | None = None) -> Iterator[Document]:
    """HTTP responses -> Documents. Every response is either yielded or counted as dropped."""
    extract = get_extractor(cfg.extractor)
    url_filter = url_filter or build_url_filter(cfg)
    allowed_mimes = frozenset(cfg.allowed_mime_types)
    allowed_status = frozenset(cfg.allowed_status)
    for resp in responses:
        size = len(resp.body) if resp.body else resp.declared_length
        stats.take_in(size)
        # URL first: it is the cheapest check, and it files dns:/ftp: records under url_scheme
        # rather than as HTTP parse failures.
        reason = url_filter.reason(resp.url)
        if reason:
            stats.drop(reason, size, resp.url)
            continue
        if resp.problem:
            stats.drop(resp.problem, size, f"{source}: record {resp.record_id} ({resp.url})",
                       bad_input=resp.problem != "revisit")
            continue
        if resp.status not in allowed_status:
            stats.drop("http_status", size, f"{resp.url}: HTTP {resp.status}")
            continue
        if resp.mime is None:
            if not _sniff_html(resp.body):
                stats.drop("not_html", size, f"{resp.url}: no Content-Type and body is not HTML")
                continue
        elif resp.mime not in allowed_mimes:
            stats.drop("not_html", size, f"{resp.url}: Content-Type {resp.mime}")
            continue
        if not resp.body.strip():
            stats.drop("empty_page", size, f"{resp.url}: empty body")
            continue
        try:
            html, encoding = decode_html(resp.body, resp.charset)
            text = extract(html)
        except Exception as exc:  # noqa: BLE001 - one bad page must not end the shard
            stats.drop("extraction_error", size, f"{resp.url}: {type(exc).__name__}: {exc}", bad_input=True)
            continue
        if len(text) < cfg.min_text_chars:
            stats.drop("empty_text", size, f"{resp.url}: no main text extracted")
            continue
        if len(text) > cfg.max_text_chars:
            stats.drop("text_too_long", size, f"{resp.url}: {len(text):,} characters")
            continue
        if encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
            stats.counters[f"charset:{encoding.lower()}"] += 1
        doc = Document(
            id=resp.record_id,
            text=text,
            url=resp.url,
            crawl_date=resp.date,
            source_file=source,
            source_offset=resp.offset,
            content_type=resp.mime,
        )
        stats.keep(doc.n_bytes)
        yield doc


def ingest_warc(path: str, cfg: IngestConfig, stats: StageStats,
                storage_options: dict[str, Any] | None = None,
                url_filter: UrlFilter | None = None) -> Iterator[Document]:
    """Open one WARC file (local or remote) and run the ingest stage over it."""
    try:
        with open_binary(path, storage_options) as fh:
            yield from ingest(iter_http_responses(fh, stats, path, cfg.max_record_bytes), cfg, stats,
                              url_filter, path)
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        stats.error("unreadable_file", f"{path}: {exc}")
