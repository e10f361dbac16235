"""PII detection and masking: emails and IP addresses as FineWeb does, plus phone and card numbers.

FineWeb (datatrove's ``PIIFormatter``) replaces every email-shaped string and every public IPv4
address. winnow finds the same things, with fewer false positives on what only looks like them:

* IPv4: dotted numbers after a version cue (``version 1.2.3.4``, ``Python 3.11.2.1``), inside a
  longer dotted run (``1.3.6.1.4.1``), in lists of software versions (``Stinger 12.2.0.79`` next
  to ``Zoom Player 15.1.2``), and all-single-digit quads (``2.5.4.3``: OIDs, section numbers;
  the only public addresses of that shape are anycast resolvers like ``8.8.8.8``, not personal).
* IPv6 (FineWeb has no IPv6): full, compressed and IPv4-tailed forms, global unicast only.
* email: no file names (``icon@2x.png``), package pins (``lodash@4.17.21``), numeric or
  one-letter TLDs (``A@B.T``), ``git@host:path`` remotes, attribute chains in code
  (``x@torch.no_grad()``); a local part glued to non-ASCII text (``地图fyzw88@126.com``) is found,
  where FineWeb's ``\\b`` misses it.

Only public addresses are PII: private, loopback, link-local and other non-global IPs are
kept, as FineWeb keeps them. The documentation ranges (RFC 5737 ``192.0.2.0/24``,
``198.51.100.0/24``, ``203.0.113.0/24``; RFC 3849 ``2001:db8::/32``) are masked too: text uses
them exactly where it would show a public address, and test data plants them so that no real
person's address has to be planted.

Phone numbers (international ``+CC`` / ``00CC``, North American, and national trunk-``0``
formats; bare digit runs only after a phone word such as ``Tel.``) and payment-card numbers
(13-19 digits, usual groupings, known IIN prefix, Luhn-valid; an ungrouped run also needs a
card word or an expiry date next to it) are options.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

# The kinds of PII, defined here only: the stage's config (winnow.tasks.pii) takes its choices
# from this Literal.
PiiKind = Literal["email", "ip", "phone", "card"]
PII_KINDS: tuple[PiiKind, ...] = get_args(PiiKind)
FINEWEB_KINDS: tuple[PiiKind, ...] = ("email", "ip")  # what FineWeb masks: the default

# Fixed placeholders, the same for every match: a masked corpus is then a pure function of its
# input (reruns, resumed shards and any worker layout give identical bytes), where FineWeb
# cycles through a list with a counter that depends on which documents a worker saw before.
# * email: FineWeb's first value; example.com is reserved for examples (RFC 2606).
# * ip: FineWeb cycles through six "random" addresses that are allocated to real networks
#   (22.0.0.0/8 is the US DoD's); 192.0.2.1 is reserved for documentation (RFC 5737), the
#   address counterpart of example.com, and still looks like an IP to a model.
#   ``replacements={"ip": "22.214.171.124"}`` gives FineWeb's first value instead.
# * phone: 555-0100 is in the NANP range reserved for fiction (555-0100..0199).
# * card: all zeros has no issuer and fails no parser, and nobody can mistake it for a card.
DEFAULT_REPLACEMENTS: dict[str, str] = {
    "email": "email@example.com",
    "ip": "192.0.2.1",
    "phone": "555-0100",
    "card": "0000 0000 0000 0000",
}

# The order kinds are found and masked in, each on the text with the earlier ones masked: an
# email contains its domain (which may be an IP literal); a grouped card number is also a digit
# run a phone pattern could take; a dotted phone number (01.99.00.21.19) next to an IPv4
# address must not make it look like part of a list of version numbers.
_PRIORITY = ("email", "card", "phone", "ip")


class PiiConfigError(ValueError):
    """Bad ``kinds`` or ``replacements`` for :class:`PiiMasker` (names the offending entries)."""


def _words(spaced: str) -> frozenset[str]:
    return frozenset(spaced.split())


@dataclass(frozen=True)
class PiiMatch:
    """One match: its kind and character span."""
    kind: str
    start: int
    end: int


# --------------------------------------------------------------------------------------------
# email
# --------------------------------------------------------------------------------------------

# Local part: RFC 5322 atoms without the rarely used, code-like !#$&*^`{|}~/=? characters (FineWeb
# keeps them; in web text they come from URLs, HTML entities and code).
_ASCII_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+'-")
_LOCAL_EDGE = _ASCII_WORD
_DOMAIN_RE = re.compile(
    r"(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?P<tld>[A-Za-z]{2,24}|xn--[A-Za-z0-9-]{2,59})"
    r"|\[(?:\d{1,3}\.){3}\d{1,3}\]"
    r"|(?P<quad>(?:\d{1,3}\.){3}\d{1,3})(?![\w.-]*[A-Za-z]))",
    re.ASCII,
)
_MORE_DOTTED_RE = re.compile(r"\d|\.\d", re.ASCII)
# File extensions that follow an "@" in file names (icon@2x.png) and are not TLDs. Extensions
# that are also country TLDs (.py .rs .sh .md .pl .cc .so) cannot be told apart and are kept.
_FILE_TLDS = _words(
    "png jpg jpeg gif svg webp bmp ico tif tiff avif heic css scss less js mjs cjs jsx ts tsx "
    "json yaml yml toml ini cfg txt log csv tsv xml pdf html htm php asp aspx jsp vue pyc rb "
    "java class jar kt swift go cpp hpp exe bin dat tmp bak min map lock"
)
# After these the domain is not over (x@torch.no_grad(), a@b.cde_f, a@b.c@d): not an address. ASCII
# only: an address glued to CJK text (…は a@example.comまで) is still an address.
_DOMAIN_GOES_ON = _ASCII_WORD | {"(", "@"}
_RETINA_RE = re.compile(r"\d+(?:\.\d+)?x$")  # icon@2x.png, logo@1.5x.jpg


def _find_emails(text: str, _runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    last_end = 0
    at = text.find("@")
    while at != -1:
        span = _email_at(text, at, last_end)
        if span is not None:
            out.append(span)
            last_end = span[1]
            at = text.find("@", last_end)
        else:
            at = text.find("@", at + 1)
    return out


def _email_at(text: str, at: int, floor: int) -> tuple[int, int] | None:
    start = at
    while start > floor and at - start <= 64 and text[start - 1] in _LOCAL_CHARS:
        start -= 1
    if at - start > 64:  # longer than RFC 5321 allows: a hash or base64 blob
        return None
    # A local part has no "..": the address starts after the last one ("Write to us
    # at...john.doe@", "email..email@"), as FineWeb's dot-atom regex finds it.
    dots = text.rfind("..", start, at)
    if dots != -1:
        start = dots + 2
    # the address starts and ends on a letter or digit: quotes, dots and dashes belong to the prose
    while start < at and text[start] not in _LOCAL_EDGE:
        start += 1
    if start == at or text[at - 1] not in _LOCAL_EDGE:
        return None
    m = _DOMAIN_RE.match(text, at + 1)
    if m is None:
        return None
    end = m.end()
    if m.group("quad") is not None:
        # john.smith@123.45.67.89: an address at an IP literal; the whole address is masked
        # (not only the IP, which would leave the person's name in clear). Octets must be
        # valid, and no more dotted digits may follow (a version pin: pkg@1.2.3.4.5).
        if any(int(part) > 255 for part in m.group("quad").split(".")) or _MORE_DOTTED_RE.match(text, end):
            return None
        return start, end
    nxt = text[end : end + 1]
    if nxt and nxt in _DOMAIN_GOES_ON:
        return None
    if nxt == ":" and text[end + 1 : end + 2] not in ("", " ", "\t", "\r", "\n"):
        return None  # git@github.com:org/repo.git, user@host:/path: scp-style remotes
    tld = m.group("tld")
    if tld is not None and (tld.lower() in _FILE_TLDS or _RETINA_RE.match(m.group(0).split(".", 1)[0])):
        return None
    return start, end


# --------------------------------------------------------------------------------------------
# IP addresses
# --------------------------------------------------------------------------------------------

_IPV4_RE = re.compile(r"(?<![A-Za-z0-9_.])(?:\d{1,3}\.){3}\d{1,3}(?![A-Za-z0-9_]|\.\d)", re.ASCII)
_IPV4_HINT = re.compile(r"\.\d{1,3}\.\d{1,3}\.", re.ASCII)  # starts with a literal: a fast scan
_IPV6_RE = re.compile(
    r"(?<![0-9A-Za-z_:.])"
    r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?"
    r"(?![0-9A-Za-z_:]|\.\d)",
    re.ASCII,
)
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")

_DOC_NETS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("192.0.2.0/24"),
    ipaddress.ip_network("198.51.100.0/24"),
    ipaddress.ip_network("203.0.113.0/24"),
    ipaddress.ip_network("2001:db8::/32"),
)
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
_NAT64_V6 = ipaddress.ip_network("64:ff9b::/96")

# A dotted quad right after one of these words is a version, section or OID, not an address.
_VERSION_CUE_RE = re.compile(
    r"(?:\b(?:v|ver|version|versions|vers|release|rel|build|firmware|fw|update|patch|rev|revision"
    r"|python|java|php|perl|ruby|node|kernel|linux|windows|android|ios|macos|chrome|firefox"
    r"|section|sect|sec|chapter|clause|paragraph|para|article|art|figure|fig|table|step|rule"
    r"|oid|snmp|mib|isbn|issn|doi|nr|no)\.?|§|#)\s*[:=]?\s*$",
    re.IGNORECASE,
)
# Dotted numbers of 3 or 5+ parts near a quad: the page lists software versions.
_DOTTED_RE = re.compile(r"(?<![\w.])\d+(?:\.\d+){2,}(?![\w]|\.\d)")
_PREV_WORD_RE = re.compile(r"([^\W\d_][\w+&-]*)[ \t]+$")
# Words after which a dotted quad is an address even in a page full of version numbers.
_IP_CUE_WORDS = _words(
    "ip ips ipv4 ipv6 address addresses addr adresse adresses dirección endereço indirizzo "
    "host hosts hostname server servers from to at via by on of in is was and or with for "
    "client remote source src dst dest destination gateway gw router dns nameserver ns proxy "
    "ping connect connecting connected resolving resolved resolves peer origin user visitor "
    "attacker blocked banned ban allow deny inet listen bind a aaaa"
)


def _ip_in_scope(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if any(ip in net for net in _DOC_NETS if net.version == ip.version):
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64_V6 else None)
        if embedded is not None:
            return _ip_in_scope(embedded)
        # Python's is_global counts e.g. a::b as global; real unicast space is 2000::/3.
        return ip in _GLOBAL_UNICAST_V6 and ip.is_global
    return ip.is_global


def _is_date(token: str) -> bool:
    parts = token.split(".")
    return len(parts) == 3 and any(len(p) == 4 for p in parts)


def _looks_like_version(text: str, start: int, end: int, quad: str) -> bool:
    if all(len(part) == 1 for part in quad.split(".")):
        return True
    before = text[max(0, start - 24) : start]
    if "\n" in before:
        before = before[before.rindex("\n") + 1 :]
    if _VERSION_CUE_RE.search(before):
        return True
    prev = _PREV_WORD_RE.search(before)
    if prev is None or prev.group(1).lower() in _IP_CUE_WORDS:
        return False
    lo, hi = max(0, start - 200), min(len(text), end + 200)
    for m in _DOTTED_RE.finditer(text, lo, hi):
        token = m.group(0)
        if m.start() == start or _is_date(token):
            continue
        if token.count(".") != 3:
            return True
        try:
            ipaddress.IPv4Address(token)
        except ValueError:
            return True  # 83.0.4250.0: a four-part version
    return False


def _find_ips(text: str, _runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    if _IPV4_HINT.search(text):
        for m in _IPV4_RE.finditer(text):
            try:
                ip4 = ipaddress.IPv4Address(m.group(0))
            except ValueError:
                continue
            if _ip_in_scope(ip4) and not _looks_like_version(text, m.start(), m.end(), m.group(0)):
                out.append((m.start(), m.end()))
    if "::" in text or _IPV6_HINT.search(text):
        for m in _IPV6_RE.finditer(text):
            try:
                ip6 = ipaddress.IPv6Address(m.group(0))
            except ValueError:
                continue
            if _ip_in_scope(ip6):
                out.append((m.start(), m.end()))
    return out


# --------------------------------------------------------------------------------------------
# phone numbers (the number patterns here and below are re.ASCII: \d is 0-9, so digit counts
# and Luhn mean what they say, and no other script's digits are taken for a phone number)
# --------------------------------------------------------------------------------------------

# Not after a word, a number and its separator (the tail of a longer run: IBANs, account
# numbers, 100-300-800-2400, 3.0441), a path, a query value or an IPv6 address (2001:db8::1);
# after "Tel.", "Tel:" or "โทร." is fine.
_NUM_LEFT = r"(?<![A-Za-z0-9_+/=#-])(?<!\d[.,])(?<!\d[ /])(?<![0-9A-Fa-f:]:)"
_NUM_RIGHT = r"(?!\d|[.,\-/]\d)"
_SEP = r"(?: - | / |[ ./-])"
_INTL_RE = re.compile(
    _NUM_LEFT + r"(?<!\()(?:\+|\(\+|00(?=[1-9]))[1-9]\d{0,2}\)?"
    r"(?:" + _SEP + r"?(?:\(0\)|\(\d{1,5}\)|\d{1,6})){2,8}" + _NUM_RIGHT,
    re.ASCII,
)
_NANP_RE = re.compile(
    _NUM_LEFT + r"(?:\+?1[ .-]?)?(?:\([2-9]\d{2}\) ?|[2-9]\d{2}(?P<s>[.-]))\d{3}(?(s)(?P=s)|[.-])\d{4}" + _NUM_RIGHT,
    re.ASCII,
)
# 201 555 0123: three groups and spaces only is also how tables write other numbers, so it
# needs a phone word before it, as a bare run does.
_NANP_SPACED_RE = re.compile(_NUM_LEFT + r"(?:\+?1 )?[2-9]\d{2} \d{3} \d{4}" + _NUM_RIGHT, re.ASCII)
_NATIONAL_RE = re.compile(
    _NUM_LEFT + r"(?:\(0[1-9]\d{0,3}\)|0[1-9]\d{0,3})"
    r"(?:(?: ?[-/] ?| )\d{2,8}(?:[ -]\d{1,5}){0,4}|(?:\.\d{2,4}){2,4})" + _NUM_RIGHT,
    re.ASCII,
)
_PHONE_WORDS = (r"(?:\b(?:tel|tél|telf|phone|ph|mobile|mob|cell|fax|call|whatsapp|telefon|telefono|teléfono"
                r"|téléphone|telefone|fone|handy|tlf|тел|телефон)\b\.?|电话|電話|手机|传真|热线|전화|☎|📞)")
_PHONE_CUE_RE = re.compile(_PHONE_WORDS + r"\s*(?:no\.?|nr\.?|number|#)?\s*[:：]?\s*$", re.IGNORECASE)
_PHONE_WORD_RE = re.compile(_PHONE_WORDS, re.IGNORECASE)
# A number right after one of these words is a reference, not a phone (Order 300-800-2400),
# unless a phone word comes first ("Tel. No. 0800 123 4567"): see _is_reference.
_NOT_PHONE_CUE_RE = re.compile(
    r"\b(?:order|invoice|ticket|ref|reference|case|id|no|nr|isbn|issn|serial|account|acct|sku|item|part"
    r"|tracking|customer|bestellnummer|rechnung|commande|facture)\b\.?\s*(?:no\.?|nr\.?|number|#)?\s*[:#]?\s*$",
    re.IGNORECASE,
)
# Between two numbers of one phone list ("021-56692669 13917985004", "Tel. 0441 801-750 / 751").
_LIST_GAP_RE = re.compile(r"[\s\u00a0,;/]{1,4}")
# Bare runs may follow another number and a space (phone lists), unlike the patterns above.
_BARE_RE = re.compile(r"(?<![A-Za-z0-9_+/=#-])(?<!\d[.,])(?<![0-9A-Fa-f:]:)\+?\d{9,13}(?![A-Za-z0-9_]|[.,]\d)",
                      re.ASCII)
_GROUP_SPLIT_RE = re.compile(r"\d+", re.ASCII)
_NUMBER_RUN_RE = re.compile(r"\d[\d ()./-]{6,}\d", re.ASCII)


def _is_reference(text: str, start: int) -> bool:
    before = text[max(0, start - 24) : start]
    return _NOT_PHONE_CUE_RE.search(before) is not None and _PHONE_WORD_RE.search(before) is None


def _digits(s: str) -> int:
    return sum(c.isdigit() for c in s)


def _trim_groups(text: str, start: int, end: int, max_digits: int) -> int:
    """Drop trailing digit groups until the number has at most ``max_digits`` digits (two
    numbers written one after the other: ``021-54098575 54098577``). Returns the new end or -1."""
    groups = [m.end() for m in _GROUP_SPLIT_RE.finditer(text, start, end)]
    while groups and _digits(text[start : groups[-1]].replace("(0)", "")) > max_digits:
        groups.pop()
    return groups[-1] if len(groups) >= 2 else -1


def _number_runs(text: str) -> list[tuple[int, int]]:
    """Stretches of digits and number punctuation (8+ characters) with a little context on each
    side: every phone and card number lies in one, and most texts have few. The detailed
    patterns run only there (each pattern over a whole text costs about as much as all of
    FineWeb's email and IP matching does)."""
    n = len(text)
    return [(max(0, m.start() - 2), min(n, m.end() + 2)) for m in _NUMBER_RUN_RE.finditer(text)]


def _find_phones(text: str, runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in runs:
        out += _phones_in(text, lo, hi)
    ends = {e for _, e in out}  # across runs: a list's numbers may sit in different runs
    for lo, hi in runs:
        for m in _BARE_RE.finditer(text, lo, hi):
            before = text[max(0, m.start() - 20) : m.start()]
            if _PHONE_CUE_RE.search(before) or _follows_phone(text, m.start(), ends):
                out.append(m.span())
                ends.add(m.end())
    return out


def _phones_in(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for m in _INTL_RE.finditer(text, lo, hi):
        start, end = m.span()
        end = _trim_groups(text, start, end, 15)
        if end < 0:
            continue
        body = text[start:end]
        n = _digits(body.replace("(0)", ""))
        groups = _GROUP_SPLIT_RE.findall(body)
        if n < 8 or sum(g == "000" for g in groups[1:]) >= 2:  # +10 000 000: a count, not a phone
            continue
        out.append((start, end))
    for m in _NANP_RE.finditer(text, lo, hi):
        if not _is_reference(text, m.start()):
            out.append(m.span())
    for m in _NATIONAL_RE.finditer(text, lo, hi):
        start, end = m.span()
        end = _trim_groups(text, start, end, 13)
        if end < 0 or _digits(text[start:end]) < 9 or _is_reference(text, start):
            continue
        groups = _GROUP_SPLIT_RE.findall(text, start, end)
        if all(len(g) == 2 for g in groups) and len(groups) != 5:
            continue  # 04 11 23 35 42 08: lottery numbers; pairs make a phone only as 5 (France)
        out.append((start, end))
    for m in _NANP_SPACED_RE.finditer(text, lo, hi):
        if _PHONE_CUE_RE.search(text[max(0, m.start() - 20) : m.start()]):
            out.append(m.span())
    return out


def _follows_phone(text: str, start: int, ends: set[int]) -> bool:
    """A bare digit run right after another phone number (a space, comma or slash between) is
    the next number of a phone list: 电话：021-56692669 13917985004."""
    for gap in range(1, 5):
        if start - gap in ends and _LIST_GAP_RE.fullmatch(text, start - gap, start):
            return True
    return False


# --------------------------------------------------------------------------------------------
# payment cards
# --------------------------------------------------------------------------------------------

# A run of digits with single space or dash separators; possessive, so a long run is judged whole
# (an 18-digit account number does not yield a 16-digit card).
_CARD_RE = re.compile(r"(?<![A-Za-z0-9_.,/+=#-])(?<!\d[ /])\d{4}(?:[ -]?\d)*+", re.ASCII)
# Printed groupings: 4-4-4-4 (most), 4-4-4-4-3 (19 digits), 4-6-5 (Amex), 4-6-4 (Diners),
# 4-4-4-2 / 4-4-4-3 / 4-4-5 (14/15/13-digit cards), 6-13 (some 19-digit UnionPay/Maestro).
_CARD_GROUPINGS = frozenset({(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4), (4, 4, 4, 2),
                             (4, 4, 4, 3), (4, 4, 5), (6, 13)})
_CARD_CUE_RE = re.compile(
    r"\b(?:card|cards|credit|debit|visa|mastercard|master card|amex|american express|discover|diners|jcb"
    r"|unionpay|maestro|cc|ccn|pan|cvv|cvc|exp|expiry|expires|paid|pay|payment|charge|charged|billing"
    r"|karte|kreditkarte|carte|tarjeta|cartão|carta|kaart)\b|カード|卡号|信用卡|银行卡|카드",
    re.IGNORECASE,
)
_EXPIRY_RE = re.compile(r"^\W{0,3}(?:0[1-9]|1[0-2])\s?/\s?(?:\d{2}|20\d{2})\b", re.ASCII)


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment-card number carries: random digit runs pass 1 in 10."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_brand(digits: str) -> str | None:
    """Issuer network from the IIN prefix and length, or None: a Luhn-valid run without a real
    issuer prefix (most numeric IDs) is not a card."""
    n = len(digits)
    p2, p4 = int(digits[:2]), int(digits[:4])
    p3, p6 = int(digits[:3]), int(digits[:6])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if (p4 == 6011 or 644 <= p3 <= 649 or p2 == 65 or 622126 <= p6 <= 622925) and 16 <= n <= 19:
        return "discover"
    if (300 <= p3 <= 305 or p2 in (36, 38, 39) or p4 == 3095) and 14 <= n <= 19:
        return "diners"
    if 3528 <= p4 <= 3589 and 16 <= n <= 19:
        return "jcb"
    if p2 == 62 and 16 <= n <= 19:
        return "unionpay"
    if p4 in (5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763) and 12 <= n <= 19:
        return "maestro"
    return None


def _find_cards(text: str, runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in runs:
        if hi - lo >= 17:  # 13 digits and the context
            out += _cards_in(text, lo, hi)
    return out


def _cards_in(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for m in _CARD_RE.finditer(text, lo, hi):
        start, end = m.span()
        raw = m.group(0)
        nxt = text[end : end + 2]
        if nxt[:1] == "/" and nxt[1:].isdigit() and (" " in raw or "-" in raw):
            # 4111 1111 1111 1111 12/27: the last group is the expiry month
            end = start + max(raw.rfind(" "), raw.rfind("-"))
            raw = text[start:end]
            nxt = text[end : end + 2]
        if nxt[:1] in _ASCII_WORD or (nxt[:1] in ".," and nxt[1:].isdigit()):
            continue
        seps = {c for c in raw if not c.isdigit()}
        if len(seps) > 1:
            continue
        if seps:
            sep = seps.pop()
            groups = raw.split(sep)
            # the whole run, else the run less a last group of up to 4 digits: a CVV or PIN
            # written after the number (4111 1111 1111 1111 123)
            options = [groups] + ([groups[:-1]] if len(groups) > 3 and len(groups[-1]) <= 4 else [])
            good = [g for g in options if tuple(map(len, g)) in _CARD_GROUPINGS
                    and luhn_valid("".join(g)) and card_brand("".join(g)) is not None]
            if not good:
                continue
            end = start + len(sep.join(good[0]))
        else:
            digits = raw
            if not 13 <= len(digits) <= 19 or not luhn_valid(digits) or card_brand(digits) is None:
                continue
            # an ungrouped run is a card only after a card word or before an expiry date
            before = text[max(0, start - 40) : start]
            if not _CARD_CUE_RE.search(before) and not _EXPIRY_RE.match(text[end : end + 12]):
                continue
        out.append((start, end))
    return out


_Finder = Callable[[str, list[tuple[int, int]]], list[tuple[int, int]]]
_FINDERS: dict[str, _Finder] = {"email": _find_emails, "ip": _find_ips, "phone": _find_phones, "card": _find_cards}
_MAX_ROUNDS = 3  # the first search, then at most two over what masking glued together


_Found = tuple[int, int, str]  # (start, end, kind) in the original text


class _Segment(NamedTuple):
    """A piece of the masked text and the span of the original it stands for."""

    start: int  # in the masked text
    end: int
    orig_start: int  # in the original text
    orig_end: int
    placeholder: bool  # a replacement (the original span counts whole), else text kept as it was


def _render(text: str, found: list[_Found], replacements: Mapping[str, str]) -> tuple[str, list[_Segment]]:
    """The text with the found spans masked, and the map of its pieces to the original."""
    parts: list[str] = []
    segments: list[_Segment] = []
    pos = out = 0
    for start, end, kind in found:
        if start > pos:
            parts.append(text[pos:start])
            segments.append(_Segment(out, out + start - pos, pos, start, False))
            out += start - pos
        repl = replacements[kind]
        parts.append(repl)
        segments.append(_Segment(out, out + len(repl), start, end, True))
        out += len(repl)
        pos = end
    if pos < len(text):
        parts.append(text[pos:])
        segments.append(_Segment(out, out + len(text) - pos, pos, len(text), False))
    return "".join(parts), segments


def _to_original(cs: int, ce: int, segments: list[_Segment], starts: list[int]) -> tuple[int, int, bool, bool]:
    """(start, end) in the original text of a masked-text span, a placeholder inside it
    counting whole; whether it touches a placeholder; whether it is exactly one. ``starts``:
    the segments' starts, for a binary search (a text may hold thousands of matches)."""
    i = bisect.bisect_right(starts, cs) - 1
    while i > 0 and starts[i - 1] == cs:  # an empty placeholder right at cs
        i -= 1
    hit: list[_Segment] = []
    for j in range(max(i, 0), len(segments)):
        sg = segments[j]
        if sg.start >= ce:
            break
        if sg.end > cs or sg.start == sg.end >= cs:
            hit.append(sg)
    first, last = hit[0], hit[-1]
    lo = first.orig_start if first.placeholder else first.orig_start + cs - first.start
    hi = last.orig_end if last.placeholder else last.orig_start + ce - last.start
    touches = any(sg.placeholder for sg in hit)
    return lo, hi, touches, len(hit) == 1 and first.placeholder and (first.start, first.end) == (cs, ce)


def _select(kind: str, spans: list[tuple[int, int]], segments: list[_Segment], first_round: bool) -> list[_Found]:
    """The finder's spans, earliest then longest first, without overlaps, in original
    coordinates. The first round leaves what an earlier kind took; later rounds only add what
    masking glued together, and leave the placeholders themselves alone."""
    out: list[_Found] = []
    last_end = -1
    starts = [sg.start for sg in segments]
    for cs, ce in sorted(set(spans), key=lambda x: (x[0], -x[1])):
        if cs < last_end:
            continue
        if segments:
            lo, hi, touches, exact = _to_original(cs, ce, segments, starts)
            if exact or (touches and first_round):
                continue
        else:
            lo, hi = cs, ce
        out.append((lo, hi, kind))
        last_end = ce
    return out


class PiiMasker:
    """Finds and masks PII of the chosen kinds; one instance is reusable and thread-safe.

    Deterministic: the same text always gives the same matches and the same masked text, each
    match replaced by its kind's fixed placeholder and every other character left as it was.
    """

    def __init__(self, kinds: Iterable[str] = FINEWEB_KINDS, replacements: Mapping[str, str] | None = None) -> None:
        chosen = tuple(dict.fromkeys(kinds))
        unknown = [k for k in chosen if k not in PII_KINDS]
        if unknown:
            raise PiiConfigError(f"unknown PII kind(s) {unknown}; known kinds: {list(PII_KINDS)}")
        repl = dict(DEFAULT_REPLACEMENTS)
        for kind, value in (replacements or {}).items():
            if kind not in PII_KINDS:
                raise PiiConfigError(f"replacements: unknown PII kind {kind!r}; known kinds: {list(PII_KINDS)}")
            if not isinstance(value, str):
                raise PiiConfigError(f"replacements[{kind!r}] must be a string, got {type(value).__name__}")
            repl[kind] = value
        self.kinds = tuple(k for k in _PRIORITY if k in chosen)
        self.replacements = repl

    def find(self, text: str) -> list[PiiMatch]:
        """Non-overlapping matches in text order.

        Kinds are found one after the other (email, card, phone, ip), each on the text with the
        earlier ones masked, as FineWeb masks emails before it looks for IPs: a number glued to
        an address (``+44 20 7946 0958john@example.com``) is judged on what is left once the
        address is masked, and a later kind does not take text an earlier one has. Then the
        masked text is searched again, where placeholders now touch other text, until nothing
        new turns up (twice at most), so that masking the masked text changes nothing."""
        found: list[_Found] = []
        for round_ in range(_MAX_ROUNDS):
            changed = False
            cur, segments = _render(text, found, self.replacements) if found else (text, [])
            runs: list[tuple[int, int]] | None = None  # number runs of cur, for phone and card
            for kind in self.kinds:
                if kind == "email" and "@" not in cur:  # the cheap checks first: C-speed scans
                    continue
                if kind in ("phone", "card"):
                    if runs is None:
                        runs = _number_runs(cur)
                    if not runs:
                        continue
                new = _select(kind, _FINDERS[kind](cur, runs or []), segments, first_round=round_ == 0)
                if new:
                    changed = True
                    if round_:  # a new span may swallow placeholders: drop what it covers
                        found = [f for f in found if not any(n[0] <= f[0] and f[1] <= n[1] for n in new)]
                    found = sorted(found + new)
                    cur, segments = _render(text, found, self.replacements)
                    runs = None
            if not changed:
                break
        return [PiiMatch(kind, start, end) for start, end, kind in found]

    def mask(self, text: str) -> tuple[str, Counter[str]]:
        """Text with each match replaced by its kind's placeholder, and the count per kind."""
        matches = self.find(text)
        counts: Counter[str] = Counter()
        if not matches:
            return text, counts
        parts: list[str] = []
        pos = 0
        for m in matches:
            parts.append(text[pos : m.start])
            parts.append(self.replacements[m.kind])
            counts[m.kind] += 1
            pos = m.end
        parts.append(text[pos:])
        return "".join(parts), counts
