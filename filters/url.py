"""URL filter: scheme and length checks plus user block lists of domains and URLs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol
from urllib.parse import urlsplit

import fsspec

from winnow.storage import StorageOptions


def _normalise_url(url: str) -> str:
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    path = parts.path.rstrip("/") or ""
    query = f"?{parts.query}" if parts.query else ""
    return f"{host}{path}{query}"


class UrlLists(Protocol):
    """Extra block lists (e.g. datatrove's bundled safety lists): a reason, or None to keep."""

    def reason(self, url: str) -> str | None:
        """The drop reason for a URL, or None to keep it."""


def read_list_file(path: str, storage_options: StorageOptions = None) -> list[str]:
    """One entry per line; blank lines and ``#`` comments ignored. Local path or any fsspec URL."""
    with fsspec.open(path, "rt", encoding="utf-8", compression="infer", **(storage_options or {})) as fh:
        return [ln.split("#", 1)[0].strip() for ln in fh if ln.split("#", 1)[0].strip()]


class UrlFilter:
    """Decides whether a URL is kept; ``reason(url)`` returns None to keep, else the drop reason.

    Domain entries block the domain and every subdomain (``example.com`` blocks
    ``news.example.com``); URL entries match after normalisation (scheme, ``www.``,
    trailing slash and fragment ignored).
    """

    def __init__(self, allowed_schemes: Iterable[str] = ("http", "https"), max_length: int = 2048,
                 blocked_domains: Iterable[str] = (), blocked_urls: Iterable[str] = (),
                 extra_lists: UrlLists | None = None) -> None:
        self.allowed_schemes = frozenset(s.lower() for s in allowed_schemes)
        self.max_length = max_length
        self.blocked_domains = frozenset(d.lower().strip().lstrip(".").removeprefix("www.")
                                         for d in blocked_domains if d.strip())
        self.blocked_urls = frozenset(_normalise_url(u) for u in blocked_urls if u.strip())
        self.extra_lists = extra_lists

    def reason(self, url: str | None) -> str | None:
        """The drop reason for a URL, or None to keep it (cheapest checks first)."""
        if not url:
            return "url_missing"
        if len(url) > self.max_length:
            return "url_too_long"
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower().rstrip(".")
        except ValueError:
            return "url_malformed"
        if parts.scheme.lower() not in self.allowed_schemes:
            return "url_scheme"
        if not host:
            return "url_malformed"
        if self.blocked_domains:
            labels = host.split(".")
            # check example.com, news.example.com, ... : every suffix of the host
            if any(".".join(labels[i:]) in self.blocked_domains for i in range(len(labels))):
                return "url_blocked_domain"
        if self.blocked_urls and _normalise_url(url) in self.blocked_urls:
            return "url_blocked"
        if self.extra_lists is not None:
            return self.extra_lists.reason(url)
        return None
