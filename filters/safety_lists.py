"""datatrove's bundled URL safety lists (the FineWeb URL filter), as opt-in block lists.

datatrove 0.10.1 ships, in ``datatrove/assets/``, what its ``URLFilter`` uses by default and
what FineWeb ran: ``url_filterblacklistsv0_3_0.tar.gz`` with two files, ``domains`` (4.56M
domains) and ``urls`` (19.6k URLs) from the UT1 blacklists (Université Toulouse Capitole;
the categories are merged in the bundle, so adult, malware, phishing, ... cannot be told
apart), plus ``banned_words.txt``, ``soft_banned_words.txt`` and ``banned_subwords.txt``.
Decisions are datatrove's, in its order (``URLFilter.filter``):

1. ``ut1_domains``: the URL's registered domain (tldextract) is listed (datatrove: ``domain``),
   else its full host name is listed (``subdomain``);
2. ``ut1_urls``: the URL string *as given* is listed (``url``). The bundled entries have no
   scheme, so a crawled ``http(s)://`` URL never matches one, in datatrove as here;
3. ``banned_words``: a banned word is one of the URL's tokens (the URL split at every run of
   characters outside ``[a-zA-Z0-9]``, case kept: an upper-case token never matches)
   (``hard_blacklisted``);
4. ``soft_banned_words``: at least ``soft_word_threshold`` (2) soft-banned words are tokens
   (``soft_blacklisted``);
5. ``banned_subwords``: a banned subword occurs anywhere in the URL lower-cased and stripped
   of everything outside ``[a-z0-9]`` (``blacklisted_subword``).

``reason(url)`` names the list (``url_safety:ut1_domains``, ...) so the ingest stage counts
drops per list. What changes is cost, not decisions: the 4.56M domains are kept as a sorted
array of 64-bit hashes (37 MB, also cached on disk so later processes load it in milliseconds)
instead of a Python set (~500 MB per process), and a host's domain verdict is memoised. A hash
collision would block a domain that is not listed: with 4.56M entries that is ~5e-13 per URL.
The public suffix list is tldextract's bundled snapshot (no network), which datatrove's
``TLDExtract()`` falls back to when it cannot download the live list.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO

import ahocorasick
import numpy as np
import xxhash
from datatrove.utils._import_utils import ASSETS_PATH
from tldextract import TLDExtract
from tldextract.remote import lenient_netloc

BLACKLIST_TARBALL = "url_filterblacklistsv0_3_0.tar.gz"
LISTS = ("ut1_domains", "ut1_urls", "banned_words", "soft_banned_words", "banned_subwords")
# "fineweb": all five, as datatrove's URLFilter() (and FineWeb) applies them.
SAFETY_LISTS = ("fineweb", *LISTS)
REASON_PREFIX = "url_safety:"
# datatrove's own reason for each check, for comparing decisions.
DATATROVE_REASONS = {"domain": "ut1_domains", "subdomain": "ut1_domains", "url": "ut1_urls",
                     "hard_blacklisted": "banned_words", "soft_blacklisted": "soft_banned_words",
                     "blacklisted_subword": "banned_subwords"}
_CACHE_FORMAT = 1
_MAX_HOSTS = 1_000_000
_READ_ERRORS = (OSError, EOFError, tarfile.TarError, UnicodeDecodeError, zlib.error)

# datatrove.pipeline.filters.url_filter.normalizer, copied (not imported: importing it loads
# every datatrove filter, ~0.7 s per process). tests/test_safety_lists.py checks they agree.
_NORMALIZER = re.compile(r"[^a-zA-Z0-9]+")


class SafetyListError(ValueError):
    """An unknown list name, or a bundled list file that is missing or unreadable."""


def normalize(text: str) -> str:
    """datatrove's ``normalize``: drop everything outside [a-zA-Z0-9], lower-case."""
    return _NORMALIZER.sub("", text).lower()


def parse_words(lines: Iterable[str]) -> set[str]:
    """datatrove's ``parse_list(..., do_normalize=True)``: every line not starting with '#',
    normalised (so a line's newline and punctuation vanish; a blank line gives '')."""
    return {normalize(x) for x in lines if x[0] != "#"}


def expand(names: Iterable[str]) -> tuple[str, ...]:
    """List names in datatrove's check order; ``fineweb`` stands for all of them."""
    wanted: set[str] = set()
    for name in names:
        if name == "fineweb":
            wanted.update(LISTS)
        elif name in LISTS:
            wanted.add(name)
        else:
            raise SafetyListError(f"unknown safety list {name!r}; available: {', '.join(SAFETY_LISTS)}")
    return tuple(n for n in LISTS if n in wanted)


def assets_dir() -> Path:
    """datatrove's ``assets`` folder: the lists are read from the installed package, never
    downloaded (a test points this elsewhere to check the missing-file error)."""
    return Path(ASSETS_PATH)


def default_cache_dir() -> Path:
    """Where the domain hashes are cached: the user's cache folder, shared by every run."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "winnow" / "safety_lists"


def _hash(s: str) -> int:
    return xxhash.xxh3_64_intdigest(s.encode("utf-8", "surrogatepass"))


def _asset(name: str) -> Path:
    path = assets_dir() / name
    if not path.is_file():
        raise SafetyListError(f"datatrove's bundled list {path} is missing (datatrove[processing]==0.10.1 "
                              "ships it; reinstall datatrove)")
    return path


def _members(tarball: Path, wanted: set[str]) -> Iterator[tuple[str, Iterator[str]]]:
    """(name, lines) of the wanted members, in one sequential pass over the gzip stream
    (``extractfile(name)`` would first decompress the whole archive to index it)."""
    found = set()
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                if member.name not in wanted:
                    continue
                fh: IO[bytes] | None = tar.extractfile(member)
                if fh is None:
                    raise SafetyListError(f"{tarball}: '{member.name}' is not a regular file")
                found.add(member.name)
                with fh:
                    yield member.name, (raw.decode("utf-8") for raw in fh)
                if found == wanted:
                    return
    except _READ_ERRORS as exc:
        raise SafetyListError(f"cannot read {tarball}: {exc}") from None
    missing = wanted - found
    if missing:
        raise SafetyListError(f"{tarball}: no {sorted(missing)} file in the archive")


def _hash_domains(lines: Iterable[str]) -> tuple[np.ndarray, bool]:
    """Sorted unique hashes of datatrove's ``domains`` entries (``x.strip()`` of every line not
    starting with '#'), and whether '' is an entry (it would block every URL without one)."""
    empty = False

    def entries() -> Iterator[int]:
        nonlocal empty
        for line in lines:
            if line[0] == "#":
                continue
            entry = line.strip()
            if entry:
                yield _hash(entry)
            else:
                empty = True

    hashes = np.fromiter(entries(), dtype=np.uint64)
    hashes.sort()
    if len(hashes):
        hashes = hashes[np.concatenate(([True], hashes[1:] != hashes[:-1]))]
    return hashes, empty


def _cache_path(tarball: Path, cache_dir: Path) -> Path:
    st = tarball.stat()
    key = f"{_CACHE_FORMAT}:{tarball.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return cache_dir / f"ut1_domains-{hashlib.sha256(key.encode()).hexdigest()[:24]}.npy"


def _read_cache(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        # Read, not memory-mapped: a cache file truncated under a mapping would kill the process
        # (SIGBUS), and 37 MB per process is cheap.
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None  # corrupt: rebuilt and rewritten
    return arr if arr.dtype == np.uint64 and arr.ndim == 1 else None


def _write_cache(path: Path, hashes: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ut1_domains-", suffix=".npy.tmp")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, hashes, allow_pickle=False)
        os.replace(tmp, path)  # atomic: a reader sees no file or the whole file
    except OSError:
        pass  # read-only home or full disk: the in-memory copy is enough


def _load_tarball(tarball: Path, domains: bool, urls: bool,
                  cache_dir: Path | None) -> tuple[np.ndarray, bool, frozenset[str]]:
    """(domain hashes, '' listed, URL set) from datatrove's tarball, the hashes from the disk
    cache when it has them."""
    hashes, empty, url_set = np.empty(0, dtype=np.uint64), False, frozenset[str]()
    cache = None if cache_dir is None or not domains else _cache_path(tarball, cache_dir)
    cached = None if cache is None else _read_cache(cache)
    if cached is not None:
        hashes, domains = cached, False
    wanted = {"domains"} if domains else set()
    if urls:
        wanted.add("urls")
    try:
        for name, lines in _members(tarball, wanted) if wanted else ():
            if name == "urls":
                url_set = frozenset(x.strip() for x in lines if x[0] != "#")
            else:
                hashes, empty = _hash_domains(lines)
                if cache is not None and not empty:
                    _write_cache(cache, hashes)
    except _READ_ERRORS as exc:  # raised while the member's lines are consumed
        raise SafetyListError(f"cannot read {tarball}: {exc}") from None
    return hashes, empty, url_set


def _word_file(name: str) -> frozenset[str]:
    path = _asset(name)
    try:
        with open(path, encoding="utf-8") as fh:
            return frozenset(parse_words(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise SafetyListError(f"cannot read {path}: {exc}") from None


@dataclass(frozen=True)
class Match:
    """Which list blocked a URL and datatrove's reason for the same check."""

    list_name: str
    datatrove_reason: str

    @property
    def reason(self) -> str:
        """The funnel reason of the match, url_safety:LIST."""
        return REASON_PREFIX + self.list_name


class SafetyLists:
    """datatrove's URL safety lists; ``reason(url)`` is None to keep, else ``url_safety:LIST``.

    Build with :func:`load_safety_lists` (cached per process)."""

    def __init__(self, names: Sequence[str], soft_word_threshold: int = 2,
                 cache_dir: str | Path | None = None) -> None:
        self.names = expand(names)
        if not self.names:
            raise SafetyListError("no safety list named (choose from: " + ", ".join(SAFETY_LISTS) + ")")
        self.soft_word_threshold = soft_word_threshold
        on = set(self.names)
        self._domains: np.ndarray = np.empty(0, dtype=np.uint64)
        self._empty_domain_listed = False
        self._urls: frozenset[str] = frozenset()
        if on & {"ut1_domains", "ut1_urls"}:
            self._domains, self._empty_domain_listed, self._urls = _load_tarball(
                _asset(BLACKLIST_TARBALL), "ut1_domains" in on, "ut1_urls" in on,
                None if cache_dir is None else Path(cache_dir))
        self._banned = _word_file("banned_words.txt") if "banned_words" in on else frozenset()
        self._soft = _word_file("soft_banned_words.txt") if "soft_banned_words" in on else frozenset()
        subwords = _word_file("banned_subwords.txt") if "banned_subwords" in on else frozenset()
        self._subwords: ahocorasick.Automaton | None = None
        if subwords:
            automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
            for i, word in enumerate(sorted(subwords)):
                automaton.add_word(word, i)
            automaton.make_automaton()
            self._subwords = automaton
        self._tld = TLDExtract(cache_dir=None, suffix_list_urls=())  # bundled PSL snapshot, no network
        self._hosts: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self._n_subwords = len(subwords)

    def sizes(self) -> dict[str, int]:
        """Entries per enabled list (for the run's log and report)."""
        n = {"ut1_domains": len(self._domains), "ut1_urls": len(self._urls), "banned_words": len(self._banned),
             "soft_banned_words": len(self._soft), "banned_subwords": self._n_subwords}
        return {k: n[k] for k in self.names}

    def _listed_domain(self, name: str) -> bool:
        if not name:
            return self._empty_domain_listed
        key = np.uint64(_hash(name))
        i = int(np.searchsorted(self._domains, key))
        return i < len(self._domains) and self._domains[i] == key

    def _domain_verdict(self, url: str) -> str | None:
        # tldextract's answer depends on the URL's host part alone (lenient_netloc), so the
        # verdict is memoised per host: a crawl has many URLs per host.
        host = lenient_netloc(url)
        hosts = self._hosts
        if host in hosts:
            return hosts[host]
        info = self._tld(url)
        verdict = None
        if self._listed_domain(info.top_domain_under_public_suffix):
            verdict = "domain"
        elif self._listed_domain(info.fqdn):
            verdict = "subdomain"
        with self._lock:
            if len(hosts) >= _MAX_HOSTS:
                hosts.clear()  # bounded memory; refills with the hosts still being crawled
            hosts[host] = verdict
        return verdict

    def match(self, url: str) -> Match | None:
        """The first list that blocks ``url``, in datatrove's order, or None."""
        if len(self._domains) or self._empty_domain_listed:
            verdict = self._domain_verdict(url)
            if verdict is not None:
                return Match("ut1_domains", verdict)
        if self._urls and url in self._urls:
            return Match("ut1_urls", "url")
        if self._banned or self._soft:
            tokens = set(_NORMALIZER.split(url))
            if self._banned and not self._banned.isdisjoint(tokens):
                return Match("banned_words", "hard_blacklisted")
            if self._soft and len(self._soft & tokens) >= self.soft_word_threshold:
                return Match("soft_banned_words", "soft_blacklisted")
        if self._subwords is not None:
            for _ in self._subwords.iter(normalize(url)):
                return Match("banned_subwords", "blacklisted_subword")
        return None

    def reason(self, url: str) -> str | None:
        """None to keep the URL, else ``url_safety:LIST`` naming the list that blocks it."""
        if not url:
            return None  # the URL filter reports missing URLs itself
        m = self.match(url)
        return None if m is None else m.reason


@lru_cache(maxsize=8)
def _cached(names: tuple[str, ...], soft_word_threshold: int, cache_dir: str | None) -> SafetyLists:
    return SafetyLists(names, soft_word_threshold, cache_dir)


def load_safety_lists(names: Iterable[str], soft_word_threshold: int = 2,
                      cache_dir: str | Path | None = None, disk_cache: bool = True) -> SafetyLists:
    """The lists named (``fineweb`` = all), loaded once per process.

    Why cached twice: the domain list takes a few seconds to read from datatrove's tarball, so
    its hash array is also kept on disk (``cache_dir``, default ``$XDG_CACHE_HOME/winnow/safety_lists``
    or ``~/.cache/winnow/safety_lists``; ``disk_cache=False``: none), which later processes read
    in milliseconds. An unknown name or a missing bundled file raises :class:`SafetyListError`.
    """
    expanded = expand(names)
    if not expanded:
        raise SafetyListError("no safety list named (choose from: " + ", ".join(SAFETY_LISTS) + ")")
    folder = None if not disk_cache else str(cache_dir or default_cache_dir())
    return _cached(expanded, soft_word_threshold, folder)
