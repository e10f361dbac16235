"""URL filter: scheme and length checks, user block lists."""

from __future__ import annotations

from winnow.filters.url import UrlFilter


def test_url_filter():
    f = UrlFilter(blocked_domains=["bad.example", "www.spam.example"],
                  blocked_urls=["https://ok.example/blocked/page/"], max_length=60)
    assert f.reason("https://ok.example/article") is None
    assert f.reason("https://news.bad.example/x") == "url_blocked_domain"
    assert f.reason("http://spam.example/") == "url_blocked_domain"
    assert f.reason("https://notbad.example/") is None  # suffix match is on label boundaries
    assert f.reason("http://www.ok.example/blocked/page#frag") == "url_blocked"
    assert f.reason("ftp://ok.example/file") == "url_scheme"
    assert f.reason("dns:ok.example") == "url_scheme"
    assert f.reason("https://ok.example/" + "a" * 100) == "url_too_long"
    assert f.reason("http://[::1") == "url_malformed"
    assert f.reason("") == "url_missing"
