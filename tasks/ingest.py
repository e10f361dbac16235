"""Ingest stage: WARC HTTP responses -> Documents with extracted main text."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from winnow.config import StrictModel, path_field
from winnow.document import Document
from winnow.extract import get_extractor
from winnow.filters.safety_lists import SAFETY_LISTS, SafetyListError, SafetyLists, load_safety_lists
from winnow.filters.url import UrlFilter, read_list_file
from winnow.sandbox import ChildError, Sandbox, SandboxError
from winnow.stage import SourceStage, StageConfig, StageEnv, StageError, register
from winnow.stats import StageStats
from winnow.storage import open_binary
from winnow.warc import HttpResponse, iter_http_responses


class UrlFilterConfig(StrictModel):
    """URL checks and block lists (YAML section `ingest.url_filter`)."""
    allowed_schemes: list[str] = Field(default_factory=lambda: ["http", "https"],
                                       description="URL schemes kept; others are dropped as url_scheme.")
    max_length: int = Field(2048, ge=16, description="URLs longer than this are dropped (url_too_long).")
    blocked_domains: list[str] = Field(default_factory=list,
                                       description="Domains dropped with all their subdomains.")
    blocked_domains_file: str | None = path_field(None, description="File (local or s3://) with one domain per line.")
    blocked_urls: list[str] = Field(default_factory=list, description="Exact URLs dropped (after normalisation).")
    blocked_urls_file: str | None = path_field(None, description="File with one URL per line.")
    safety_lists: list[str] = Field(
        default_factory=list,
        description="Block lists bundled with datatrove, as FineWeb uses them (opt-in): "
                    + ", ".join(SAFETY_LISTS) + ". Drops are counted per list (url_safety:NAME).")

    @field_validator("safety_lists")
    @classmethod
    def _known_lists(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(SAFETY_LISTS))
        if unknown:
            raise ValueError(f"unknown safety list(s) {unknown}; available: {', '.join(SAFETY_LISTS)}")
        return v


class IngestConfig(StageConfig):
    """Settings of the ingest stage (YAML section `ingest`)."""
    extractor: Literal["resiliparse", "resiliparse-raw", "trafilatura"] = Field(
        "resiliparse", description="resiliparse (fast main-content extraction + boilerplate-line cleanup, "
                                   "default), resiliparse-raw (no cleanup: keeps titles, captions, teasers) "
                                   "or trafilatura (datatrove/FineWeb settings; much slower).")
    allowed_mime_types: list[str] = Field(
        default_factory=lambda: ["text/html", "application/xhtml+xml"],
        description="HTTP Content-Types treated as HTML; a missing Content-Type is sniffed.")
    allowed_status: list[int] = Field(default_factory=lambda: [200], description="HTTP status codes kept.")
    max_record_bytes: int = Field(10_000_000, ge=1024,
                                  description="WARC records larger than this are skipped unread (oversized).")
    min_text_chars: int = Field(1, ge=0, description="Extracted text shorter than this is dropped (empty_text).")
    max_text_chars: int = Field(1_000_000, ge=1,
                                description="Extracted text longer than this is dropped (text_too_long).")
    max_page_bytes: int = Field(10_000_000, ge=1024,
                                description="HTTP bodies larger than this after Content-Encoding decoding are "
                                            "dropped before any parsing (page_too_large; decoded_too_large when "
                                            "found while decoding).")
    extract_timeout_s: float = Field(5.0, gt=0,
                                     description="Time budget of one page's charset decoding and extraction, "
                                                 "run in a worker process; a page over it is dropped "
                                                 "(extraction_timeout) and the worker killed and replaced.")
    extract_memory_mb: int = Field(2048, ge=256,
                                   description="Address-space limit of that worker; a page that needs more is "
                                               "dropped (extraction_memory) and the worker replaced.")
    max_resyncs: int = Field(1000, ge=0,
                             description="Resyncs over damaged gzip members before a WARC file is given up "
                                         "(warc_abandoned).")
    abandoned_warc: Literal["fail", "count"] = Field(
        "fail", description="What a WARC file given up after max_resyncs does: fail (its shard fails and is "
                            "retried by the next run) or count (only counted; the run goes on).")
    url_filter: UrlFilterConfig = Field(default_factory=UrlFilterConfig)

    @field_validator("allowed_mime_types")
    @classmethod
    def _lower(cls, v: list[str]) -> list[str]:
        return [m.lower().strip() for m in v]


def build_url_filter(cfg: IngestConfig, storage_options: dict | None = None) -> UrlFilter:
    """The URL filter of a config, with its list files read (they must exist: see ``check``)."""
    uf = cfg.url_filter
    domains = list(uf.blocked_domains)
    urls = list(uf.blocked_urls)
    if uf.blocked_domains_file:
        domains += read_list_file(uf.blocked_domains_file, storage_options)
    if uf.blocked_urls_file:
        urls += read_list_file(uf.blocked_urls_file, storage_options)
    safety: SafetyLists | None = load_safety_lists(uf.safety_lists) if uf.safety_lists else None
    return UrlFilter(uf.allowed_schemes, uf.max_length, domains, urls, safety)


def _sniff_html(body: bytes) -> bool:
    head = body[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"\xef\xbb\xbf<!doctype html", b"\xef\xbb\xbf<html")) \
        or b"<html" in head or b"<body" in head


_WARMUP_PAGE = b"<html><body><p>warm-up</p></body></html>"


def extraction_sandbox(cfg: IngestConfig) -> Sandbox:
    """The worker process that decodes and extracts pages under the config's time and memory
    bounds (started at its first page, with the extractor already imported)."""
    get_extractor(cfg.extractor)  # an unknown name fails here, not in the worker
    return Sandbox("winnow.extract:extract_page", cfg.extract_timeout_s, cfg.extract_memory_mb,
                   warmup=(_WARMUP_PAGE, None, cfg.extractor))


def ingest(responses: Iterable[HttpResponse], cfg: IngestConfig, stats: StageStats,
           url_filter: UrlFilter | None = None, source: str | None = None,
           sandbox: Sandbox | None = None) -> Iterator[Document]:
    """HTTP responses -> Documents. Every response is either yielded or counted as dropped.
    Pages are decoded and extracted in ``sandbox`` (one of this call's own when None)."""
    if sandbox is None:
        with extraction_sandbox(cfg) as own:
            yield from ingest(responses, cfg, stats, url_filter, source, own)
        return
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
        if len(resp.body) > cfg.max_page_bytes:
            stats.drop("page_too_large", size, f"{resp.url}: {len(resp.body):,} bytes", bad_input=True)
            continue
        if not resp.body.strip():
            stats.drop("empty_page", size, f"{resp.url}: empty body")
            continue
        try:
            text, encoding, counters = sandbox(resp.body, resp.charset, cfg.extractor)
        except SandboxError as exc:  # the worker was killed; the next page gets a new one
            stats.drop(f"extraction_{exc.reason}", size,
                       f"{resp.url}: decoding + extraction: {exc}; worker replaced", bad_input=True)
            continue
        except ChildError as exc:  # one bad page must not end the shard
            stats.drop("extraction_error", size, f"{resp.url}: {exc}", bad_input=True)
            continue
        stats.counters.update(counters)
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


def ingest_warc(path: str, cfg: IngestConfig, stats: StageStats, storage_options: dict | None = None,
                url_filter: UrlFilter | None = None, sandbox: Sandbox | None = None) -> Iterator[Document]:
    """Open one WARC file (local or remote) and run the ingest stage over it. A file that
    cannot be opened raises: its shard fails and is retried on the next run, never marked done
    with the file's documents missing."""
    with open_binary(path, storage_options) as fh:
        yield from ingest(iter_http_responses(fh, stats, path, cfg.max_record_bytes,
                                              max_body_bytes=cfg.max_page_bytes,
                                              max_resyncs=cfg.max_resyncs,
                                              fail_when_abandoned=cfg.abandoned_warc == "fail"),
                          cfg, stats, url_filter, path, sandbox)


@register
class IngestStage(SourceStage[IngestConfig]):
    """Reads WARC files into documents."""
    name = "ingest"
    config_model = IngestConfig
    order = 0
    formats: ClassVar[tuple[str, ...]] = ("warc",)
    summary = "WARC response records -> main text (HTML only, HTTP 200, URL filter and block lists)."

    def __init__(self, section: IngestConfig, env: StageEnv) -> None:
        super().__init__(section, env)
        self.url_filter = build_url_filter(section, env.storage_options)
        # One extraction worker per shard reader, shared by the shard's files; it ends with the
        # shard (``close``), or at once when reading fails or stops.
        self.sandbox = extraction_sandbox(section)

    @classmethod
    def check(cls, section: IngestConfig, env: StageEnv) -> None:
        for field in ("blocked_domains_file", "blocked_urls_file"):
            path = getattr(section.url_filter, field)
            if path:
                try:
                    read_list_file(path, env.storage_options)
                except FileNotFoundError:
                    raise StageError(f"ingest.url_filter.{field}: file not found: {path}") from None
                except (OSError, UnicodeDecodeError, ValueError) as exc:
                    raise StageError(f"ingest.url_filter.{field}: cannot read {path}: {exc}") from None
        try:
            get_extractor(section.extractor)("<html><body><p>check</p></body></html>")
        except ImportError as exc:
            raise StageError(f"ingest.extractor {section.extractor}: {exc}") from None
        if section.url_filter.safety_lists:
            try:
                load_safety_lists(section.url_filter.safety_lists)
            except SafetyListError as exc:
                raise StageError(f"ingest.url_filter.safety_lists: {exc}") from None

    def read(self, path: str, stats: StageStats) -> Iterator[Document]:
        try:
            yield from ingest_warc(path, self.cfg, stats, self.env.storage_options, self.url_filter, self.sandbox)
        except BaseException:  # an error, Ctrl-C, or the consumer stopped early (GeneratorExit)
            self.sandbox.close()
            raise

    def close(self) -> None:
        self.sandbox.close()
