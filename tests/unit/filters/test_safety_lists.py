"""datatrove's bundled URL safety lists: winnow's lookup makes datatrove's URLFilter decisions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from datatrove.data import Document as DTDocument
from datatrove.pipeline.filters import url_filter as dt_url_filter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tldextract import TLDExtract

from winnow.filters import safety_lists as sl
from winnow.filters.url import UrlFilter

URLS = Path(__file__).resolve().parents[2] / "data" / "safety_lists" / "warc_urls.txt"
CRAFTED = [
    "http://0-1sex.com/", "https://www.0-1sex.com/a/b?c=d", "http://sub.sub.0-1avsex.com:8080/x",
    "http://user:pw@0-1sex.com/", "http://WWW.0-1SEX.COM/", "http://0-1sex.com./", "0-1sex.com/no-scheme",
    "https://dating.telegraph.co.uk/s/", "https://telegraph.co.uk/dating", "http://fashionista.com/",
    # the bundled URL list holds scheme-less entries: only a scheme-less string equal to one matches
    "0149614511.strimbat.fr/porno-anal-escort-granville-faire-sa-salope-baise-une-vache-video-gratuite-x-escort-"
    "girl-auxerre",
    "http://0149614511.strimbat.fr/porno-anal-escort-granville-faire-sa-salope-baise-une-vache-video-gratuite-x-"
    "escort-girl-auxerre",
    "http://example.com/porn", "http://example.com/PORN", "http://example.com/Porn/", "http://example.com/p0rn",
    "http://example.com/sexy-girls-nude", "http://example.com/sexy", "http://example.com/nude/sexy?x=1",
    "http://example.com/2girls1cup", "http://example.com/watch-2-Girls-1-Cup", "http://example.com/ballgag",
    "http://127.0.0.1/porn-free", "http://[::1]:8080/", "http://localhost/x", "http://例え.jp/テスト",
    "http://xn--r8jz45g.jp/", "https://en.wikipedia.org/wiki/Essex", "https://www.sussex.ac.uk/",
    "https://www.middlesex.gov/", "https://example.com/analysis", "https://example.com/cumulative-sum",
    "http://a.b.c.d.e.blogspot.com/", "ftp://0-1sex.com/file", "mailto:someone@0-1sex.com", "http://",
]
# datatrove reads tldextract's deprecated alias on every URL.
pytestmark = pytest.mark.filterwarnings("ignore:The 'registered_domain' property is deprecated:DeprecationWarning")


def _warc_urls() -> list[str]:
    return [u for u in URLS.read_text(encoding="utf-8").split("\n") if u]


@pytest.fixture(scope="module")
def datatrove_filter(tmp_path_factory: pytest.TempPathFactory) -> dt_url_filter.URLFilter:
    """datatrove's URLFilter() as FineWeb ran it, its lists extracted into a temp folder (not
    ~/.cache) and tldextract on the bundled public-suffix snapshot (what it falls back to offline)."""
    folder = str(tmp_path_factory.mktemp("datatrove_assets"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dt_url_filter, "cached_assets_path", lambda **_: folder)
        f = dt_url_filter.URLFilter()
        f.tldextractor = TLDExtract(cache_dir=None, suffix_list_urls=())
        f.download_data()
    return f


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("winnow_cache")


@pytest.fixture(scope="module")
def lists(cache_dir: Path) -> sl.SafetyLists:
    return sl.SafetyLists(["fineweb"], cache_dir=cache_dir)


def _datatrove(f: dt_url_filter.URLFilter, url: str) -> str | None:
    r = f.filter(DTDocument(text="", id="", metadata={"url": url}))
    return None if r is True else r[1]


def _ours(lists: sl.SafetyLists, url: str) -> str | None:
    m = lists.match(url)
    return None if m is None else m.datatrove_reason


def test_normalisation_and_word_lists_are_datatroves() -> None:
    for s in ("http://Ex-Ample.com/a_b?c=D&e=f#g", "ÄÖÜ 2 Girls 1 Cup", "", "---", "xn--r8jz45g"):
        assert sl.normalize(s) == dt_url_filter.normalize(s)
        assert sl._NORMALIZER.split(s) == dt_url_filter.normalizer.split(s)
    for name in ("banned_words.txt", "soft_banned_words.txt", "banned_subwords.txt"):
        path = sl.assets_dir() / name
        with open(path, encoding="utf-8") as fh:
            expected = dt_url_filter.parse_list(fh)
        with open(path, encoding="utf-8") as fh:
            assert sl.parse_words(fh) == expected


def test_same_decisions_as_datatrove_on_the_shared_warcs_urls(datatrove_filter, lists: sl.SafetyLists) -> None:
    urls = _warc_urls()
    assert len(urls) > 1500
    theirs = [_datatrove(datatrove_filter, u) for u in urls]
    ours = [_ours(lists, u) for u in urls]
    assert ours == theirs
    blocked = {u: r for u, r in zip(urls, ours, strict=True) if r}
    # Real hits among them (all false positives for a news/government crawl, as FineWeb's would be).
    assert blocked["http://fashionista.com/"] == "domain"
    assert blocked["https://dating.telegraph.co.uk/s/"] == "subdomain"
    assert blocked["http://data.gov.uk/users/mujeres-xxx"] == "hard_blacklisted"
    assert len(blocked) == 9


@pytest.mark.parametrize("url", CRAFTED)
def test_same_decisions_as_datatrove_on_crafted_urls(url: str, datatrove_filter, lists: sl.SafetyLists) -> None:
    assert _ours(lists, url) == _datatrove(datatrove_filter, url)


_LABELS = st.sampled_from(["0-1sex", "0-1avsex", "dating", "telegraph", "co", "uk", "com", "www", "blogspot",
                           "xn--r8jz45g", "jp", "fashionista", "example", "sub", "WWW", "COM", "127", "0", "1"])
_WORDS = st.sampled_from(["porn", "PORN", "sexy", "girls", "nude", "xxx", "2girls1cup", "essex", "analysis", "cum",
                          "news", "a", "index.html", "", "-", "_", "%20", "?", "&", "=", "#", "..", "ü", "東京"])


@st.composite
def _urls(draw: st.DrawFn) -> str:
    host = ".".join(draw(st.lists(_LABELS, min_size=1, max_size=5)))
    port = draw(st.sampled_from(["", ":80", ":8080"]))
    path = draw(st.sampled_from(["/", "-", "_", "?q=", "/a/"])).join(draw(st.lists(_WORDS, max_size=6)))
    scheme = draw(st.sampled_from(["http://", "https://", "", "HTTP://"]))
    noise = draw(st.text(max_size=4))
    return f"{scheme}{host}{port}/{path}{noise}"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(url=_urls())
def test_same_decisions_as_datatrove_on_generated_urls(url: str, datatrove_filter, lists: sl.SafetyLists) -> None:
    assert _ours(lists, url) == _datatrove(datatrove_filter, url)


def test_each_datatrove_reason_is_exercised(datatrove_filter) -> None:
    reasons = {_datatrove(datatrove_filter, u) for u in CRAFTED}
    assert reasons >= {None, "domain", "subdomain", "url", "hard_blacklisted", "soft_blacklisted",
                       "blacklisted_subword"}


def test_reason_names_the_list(lists: sl.SafetyLists) -> None:
    assert lists.reason("http://0-1sex.com/") == "url_safety:ut1_domains"
    assert lists.reason("https://dating.telegraph.co.uk/s/") == "url_safety:ut1_domains"
    assert lists.reason("http://example.com/porn") == "url_safety:banned_words"
    assert lists.reason("http://example.com/sexy-girls-nude") == "url_safety:soft_banned_words"
    assert lists.reason("http://example.com/watch-2-Girls-1-Cup") == "url_safety:banned_subwords"
    assert lists.reason("https://www.example.com/news/today") is None
    assert lists.reason("") is None
    assert set(lists.sizes()) == set(sl.LISTS) and lists.sizes()["ut1_domains"] > 4_000_000
    for dt_reason, name in sl.DATATROVE_REASONS.items():
        assert sl.Match(name, dt_reason).reason == f"url_safety:{name}"


def test_a_subset_of_lists_applies_only_those(cache_dir: Path) -> None:
    words = sl.load_safety_lists(["banned_words"], cache_dir=cache_dir)
    assert words.names == ("banned_words",)
    assert words.reason("http://example.com/porn") == "url_safety:banned_words"
    assert words.reason("http://0-1sex.com/") is None
    assert words.reason("http://example.com/sexy-girls-nude") is None
    domains = sl.load_safety_lists(["ut1_domains", "ut1_urls"], cache_dir=cache_dir)
    assert domains.reason("http://0-1sex.com/") == "url_safety:ut1_domains"
    assert domains.reason("http://example.com/porn") is None
    assert sl.load_safety_lists(["banned_words"], cache_dir=cache_dir) is words  # loaded once per process
    assert sl.expand(["fineweb"]) == sl.LISTS


def test_disk_cache_is_written_reused_and_rebuilt_when_corrupt(cache_dir: Path, lists: sl.SafetyLists) -> None:
    files = sorted(cache_dir.glob("ut1_domains-*.npy"))
    assert len(files) == 1  # written by the first load (the `lists` fixture)
    again = sl.SafetyLists(["ut1_domains"], cache_dir=cache_dir)
    assert np.array_equal(again._domains, lists._domains)
    assert again.reason("http://0-1sex.com/") == "url_safety:ut1_domains"
    files[0].write_bytes(b"not an npy file")
    rebuilt = sl.SafetyLists(["ut1_domains"], cache_dir=cache_dir)
    assert rebuilt.reason("http://0-1sex.com/") == "url_safety:ut1_domains"
    assert np.array_equal(np.load(files[0]), np.asarray(again._domains))


def test_unknown_list_and_empty_selection_are_errors() -> None:
    with pytest.raises(sl.SafetyListError, match="unknown safety list 'adult'; available: fineweb, ut1_domains"):
        sl.load_safety_lists(["adult"])
    with pytest.raises(sl.SafetyListError, match="no safety list named"):
        sl.load_safety_lists([])


def test_missing_bundled_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sl, "assets_dir", lambda: tmp_path)
    with pytest.raises(sl.SafetyListError, match=r"banned_words\.txt is missing"):
        sl.SafetyLists(["banned_words"], cache_dir=None)
    (tmp_path / sl.BLACKLIST_TARBALL).write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(sl.SafetyListError, match="cannot read"):
        sl.SafetyLists(["ut1_urls"], cache_dir=None)


def test_url_filter_reports_the_safety_list(lists: sl.SafetyLists) -> None:
    f = UrlFilter(blocked_domains=["example.org"], extra_lists=lists)
    assert f.reason("http://news.example.org/porn") == "url_blocked_domain"  # the user's list first
    assert f.reason("http://example.com/porn") == "url_safety:banned_words"
    assert f.reason("http://0-1sex.com/") == "url_safety:ut1_domains"
    assert f.reason("https://example.com/") is None
