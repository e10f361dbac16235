"""Builds labelled.jsonl, the PII labelled set, from the real texts of ../shared/data.

    python tests/data/pii/make_set.py            # rewrites tests/data/pii/labelled.jsonl
    python tests/data/pii/make_set.py --check    # builds in memory, compares with the file

Three parts (see README.md): natural windows of real pages and WARC records, labelled by the
candidate rules and hand-checked tables below (not by filters/pii.py, which is what gets
measured); real paragraphs with seeded synthetic PII planted in them (reserved ranges only);
real paragraphs with planted hard negatives. Deterministic: same shared data, same file.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import ipaddress
import json
import os
import random
import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))
OUT = Path(__file__).resolve().parent / "labelled.jsonl"
SEED = 20240601

Span = tuple[str, int, int]  # (kind or negative category, start, end)


def shared() -> Path:
    path = Path(os.environ.get("WINNOW_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        sys.exit(f"shared data not found at {path} (set WINNOW_SHARED_DATA)")
    return path


# ---------------------------------------------------------------------------------------------
# Source texts
# ---------------------------------------------------------------------------------------------

def page_texts(data: Path) -> Iterator[tuple[str, str]]:
    """Full visible text (boilerplate included: that is where contact details live) of every
    HTML page in the shared data, with resiliparse (main_content=False)."""
    from resiliparse.extract.html2text import extract_plain_text
    from warcio.archiveiterator import ArchiveIterator

    from winnow.charset import decode_html

    for sub in ("html/pages", "html/trafilatura_eval/pages"):
        for path in sorted((data / sub).glob("*.html.gz")):
            html = decode_html(gzip.open(path).read(), None)[0]
            yield f"{sub}/{path.name}", extract_plain_text(html, main_content=False)
    for path in sorted((data / "warc").glob("*.warc*")):
        if path.name == "pages.warc.gz" or "brotli" in path.name:  # = html/pages; warcio cannot read br
            continue
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh):
                ctype = rec.http_headers.get_header("Content-Type") if rec.http_headers else None
                if rec.rec_type != "response" or not ctype or "html" not in ctype:
                    continue
                html = decode_html(rec.content_stream().read(), None)[0]
                uri = rec.rec_headers.get_header("WARC-Target-URI")
                yield f"warc/{path.name}#{uri}", extract_plain_text(html, main_content=False)


def record_texts(data: Path) -> Iterator[tuple[str, str]]:
    """Text that crawlers wrote: WARC record headers, warcinfo, DNS answers, wget logs, crawl
    metadata, and non-HTML text payloads (JSON, JS, CSS, plain text)."""
    from warcio.archiveiterator import ArchiveIterator

    for path in sorted((data / "warc").glob("*.warc*")):
        if path.name == "pages.warc.gz" or "brotli" in path.name:
            continue
        with open(path, "rb") as fh:
            headers_taken = 0
            for i, rec in enumerate(ArchiveIterator(fh)):
                uri = rec.rec_headers.get_header("WARC-Target-URI") or rec.rec_type
                if rec.rec_headers.get_header("WARC-IP-Address") and headers_taken < 2:
                    headers_taken += 1
                    yield f"warc/{path.name}#record{i}-header", rec.rec_headers.to_str()
                ctype = (rec.http_headers.get_header("Content-Type") or "") if rec.http_headers else ""
                if rec.rec_type == "response" and "html" in ctype:
                    continue
                try:
                    body = rec.content_stream().read().decode("utf-8")
                except UnicodeDecodeError:  # binary payloads
                    continue
                yield f"warc/{path.name}#record{i}:{uri}", body


def book_texts(data: Path) -> Iterator[tuple[str, str]]:
    """The shared books as they are (one still has its Project Gutenberg header and licence)."""
    for path in sorted((data / "text").glob("*/*.txt.gz")):
        yield f"text/{path.parent.name}/{path.name}", gzip.open(path, "rt", encoding="utf-8").read()


def prose_paragraphs(data: Path) -> dict[str, list[tuple[str, str]]]:
    """Real paragraphs (200-900 characters) per language for planting: news article bodies,
    Gutenberg, ELTeC novels, and the Japanese ClueWeb09 pages."""
    out: dict[str, list[tuple[str, str]]] = {"en": [], "de": [], "fr": [], "ja": []}
    for line in open(data / "html" / "ground_truth.jsonl", encoding="utf-8"):
        d = json.loads(line)
        if not re.search(r"[A-Za-z]{3}", d["text"][:200]) or re.search(r"[\u0400-\u04ff\uac00-\ud7af]", d["text"]):
            continue
        for k, para in enumerate(d["text"].split("\n\n")):
            if 200 <= len(para) <= 900 and para.count(". ") >= 1:
                out["en"].append((f"html/ground_truth.jsonl#{d['id'][:16]}/p{k}", para))
    for path in sorted((data / "text" / "gutenberg").glob("*.txt.gz")):
        book = gzip.open(path, "rt", encoding="utf-8").read()
        for k, para in enumerate(book.split("\n\n")):
            para = re.sub(r"\s*\n\s*", " ", para.strip())
            if 200 <= len(para) <= 900 and para.count(". ") >= 1:
                out["en"].append((f"text/gutenberg/{path.name}#p{k}", para))
    for lang in ("de", "fr"):
        for path in sorted((data / "text" / "eltec").glob(f"{lang}_*.txt.gz")):
            for k, para in enumerate(gzip.open(path, "rt", encoding="utf-8").read().split("\n\n")):
                if 200 <= len(para) <= 900 and para.count(". ") >= 1:
                    out[lang].append((f"text/eltec/{path.name}#p{k}", para))
    for src, text in page_texts(data):
        if "clueweb09-ja" not in src:
            continue
        for k, para in enumerate(text.split("\n")):
            para = para.strip()
            if 60 <= len(para) <= 600 and para.count("。") >= 2:
                out["ja"].append((f"{src}#l{k}", para))
    return out


# ---------------------------------------------------------------------------------------------
# Natural cases: candidate rules + hand-checked tables
# ---------------------------------------------------------------------------------------------

# Broad on purpose (more than any detector should take); every hit is labelled by the tables.
EMAIL_CAND = re.compile(r"[\w.+'%-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
IPV4_CAND = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d])(?!\.\d)")
PHONE_CAND = re.compile(
    r"(?:\(?\+\d[\d ()./-]{6,}\d|\(\d{2,5}\) ?\d[\d /-]{4,}\d|(?<![\w.,/-])\d{2,5}(?: - |[-. /])\d{2,4}"
    r"(?:[-. ]\d{2,5})+(?!\d)|(?<![\w.,/-])\d{2,5}[- /]\d{5,8}(?!\d)|(?<![\w./])\d{10,13}(?!\d))"
)
NEGATIVE_CANDS: dict[str, re.Pattern[str]] = {
    "version": re.compile(r"(?<![\w.])\d+(?:\.\d+){2,}(?![\w]|\.\d)"),
    "date": re.compile(r"(?<![\w.])(?:\d{1,2}\.\d{1,2}\.\d{4}|\d{4}[.-]\d{2}[.-]\d{2})(?![\w]|\.\d)"),
    "time": re.compile(r"(?<![\w:])\d{1,2}:\d{2}:\d{2}(?![\w]|:\d)"),
    "iban": re.compile(r"\b[A-Z]{2}\d{2}(?: ?\d{4}){3,7}(?: ?\d{1,3})?\b"),
    "handle": re.compile(r"(?<![\w.@])@[A-Za-z_]\w{2,}(?![\w.@])"),
    "year_range": re.compile(r"(?<![\w.])(?:1[89]|20)\d{2} ?[-–] ?(?:1[89]|20)\d{2}(?![\w])"),
    "numeric_id": re.compile(r"(?<![\w.])\d{12,19}(?![\w])"),
    "decimal": re.compile(r"(?<![\w.])\d{1,3}\.\d{9,}(?![\w])"),
    "hash": re.compile(r"\b[0-9a-f]{32}::"),
}

# Every phone number among the natural phone candidates, checked by hand against its page, as
# labelled (the whole dialable number: "+41 (0)58 765 55 11", "+43 1 865 45 06 - 85" with its
# extension, "0800 723 454 6"). Candidates that hold none of these are in NATURAL_NOT_PHONE or
# settled by auto_not_phone(); any other candidate stops the build for review.
NATURAL_PHONES: frozenset[str] = frozenset({
    "+7(495) 633-5-633", "+82 2 751 1500", "+82 54 740 3800", "02-751-1500", "+41 41 544 78 00",
    "+41 41 761 97 25", "03-5829-8082", "03-5809-2727", "03-5809-2350", "727-821-9494", "212-260-1332",
    "347-966-3806", "03-7619056", "03-5613699", "1-800-574-574", "+972-3-761-9056", "972-3-561-3699",
    "(808) 847-3246", "(808) 847-1112", "(047) 2106-8000", "1-800-843-0008", "+43 1 72570", "+56 2 23648300",
    "(021) 496 261", "+41 (0)52 525 00 25", "(+48) 22 525 80 00", "(+48) 22 525 80 40", "212-306-6794",
    "+41 58 765 5076", "+41 58 765 5104", "+41 (0)58 765 55 11", "+41 (0)58 765 50 28", "05191 979238",
    "05191 979228", "+49-340-2103-2416", "+49-340-2104-2285", "+38 (044) 207-33-05", "+38 (044) 207-97-00",
    "0661 - 480 488 151", "06621 - 640 56 80", "+43 1 865 45 06 - 0", "+43 1 865 45 06 - 85", "400-081-2017",
    "400-851-5558", "010-63072648", "030-22751170", "030-22756128", "+49 221 / 50 80 00",
    "+49 221 / 50 800 100", "+49 221 / 86 99 797", "+49 221 / 86 99 791", "+49 221 / 29 23 560",
    "+49 221 / 29 23 569 9", "04451 9515-161", "030 275-95-218", "+49 6135 9323-0", "+49 6135 9323-110",
    "0800 723 454 6", "00800 - 71 72 73 74", "0441 801-750", "0441-801-750", "+43 1 599 16 - 957 35",
    "+43 1 599 16 - 999 57 35", "+43 664 868 7407", "0664 1183226", "+49 8105 77803-380", "+49 6182 7865-99",
    "+49 8105 77803380", "+49 6182 786599", "+49 8105 77803-50", "+7 (926) 081-55-07", "0512-55111066",
    "0512-55111088", "021-56692669", "13917985004", "021-36070335", "13701664517", "021-54098575",
    "54098577", "021-54098577", "13611778776", "00852-27100021", "00852-26875563", "4008841001",
    "0755-22648081", "0755-86153989", "0900 4683643", "085920594986", "+56 9 9200 7888", "+56 3 2235 7700",
    "+56 9 9200 7878", "+56 4 3221 2800", "+56 4 5259 2200", "+56 9 7776 5943", "+56 6 3228 3380",
    "+56 6 4221 7180", "+56 6 5222 7680",
})
# The UK rail page lists ~40 helplines "0800 0158 123 or 18001 0800 0158 123": the 18001 prefix
# (text relay) is part of the dialled number, so the whole "18001 0800 ..." is the span.
UK_HELPLINE = re.compile(r"(?<!\d)(?<!\d )(?:18001 )?0\d{3,4} \d{3,4} \d{3,4}(?! ?\d)")
NATURAL_NOT_PHONE: dict[str, str] = {
    # ID numbers, amounts and bank data that the broad candidate rule takes
    "160.083.711": "price", "1.121.319.953": "price", "116.133.529": "numeric_id",
    "329 350 352": "numeric_id", "248203332": "numeric_id", "100-300-800-2400": "order_id",
    "5430 Wettingen": "postal", "00-564": "postal", "89259-565": "postal",
    "0900 0000 3002 2018": "iban",  # inside "IBAN: CH38 0900 0000 3002 2018 5"
    "0061947069": "numeric_id",  # "Rekening BCA 0061947069": a bank account
    "01578251009": "numeric_id", "06598550587": "numeric_id",  # Italian VAT and tax codes
    "1012014004": "numeric_id",  # a Chinese news-service licence number
    "06.09.23 11.09.2023": "date", "13.09.23 26.09.2023": "date",
    "2019 - 01.01.20": "date", "2020 - 13.04.20": "date",  # "Live-Box 2019 - 01.01.20 um 19:27"
    "4306 0967 0000 0334 01": "iban", "4405 0199 0212 1545": "iban", "7645 0000 0240 0118 33": "iban",
    "10.423.242": "count", "61.783.588": "count", "67.830 36.230": "count",  # hits, views, followers
    "83.102.459": "numeric_id",  # a Brazilian CNPJ company number
    "22008-04-02": "numeric_id", "51574168486": "numeric_id",  # URL identifiers
    "64-622154": "numeric_id",  # the Gutenberg licence's EIN (employer identification number)
    "1492244123": "numeric_id",  # 10 digits in a spam post title: no Chinese phone has that shape
}
# Public-looking dotted quads in natural text that are not addresses.
NATURAL_NOT_IP = {"12.2.0.79": "version"}
# Email-shaped strings that are not addresses, or windows too ambiguous to label.
NATURAL_SKIP_EMAIL = {"hrk@rriere.de"}  # "bundesw€hrk@rriere.de/VIP/": a URL with letters replaced
RETINA_FILE = re.compile(r"@\d(?:\.\d)?x\.(?:png|gif|jpe?g|svg|webp)$")
MAX_WINDOWS_PER_SOURCE = 3
UNREVIEWED: list[str] = []


def email_label(raw: str, start: int) -> tuple[int, int]:
    """ASCII address inside a broad candidate: leading non-ASCII / punctuation (网站地图fyzw88@…)
    and trailing dots or dashes are prose."""
    s, e = 0, len(raw)
    while s < e and not (raw[s].isascii() and (raw[s].isalnum() or raw[s] == "_")):
        s += 1
    while e > s and raw[e - 1] in ".-":
        e -= 1
    return start + s, start + e


DATE_START = re.compile(r"^(?:\d{1,4}[-./]\d{1,2}[-./]\d{2,4}|\d{1,2}[-.]\d{1,2} \d{1,2}\b|\d{1,2} \d{2}\.\d{2})")
TABLE_OR_CODE = re.compile(r"(?:[\t\"=?/&\[]|\":|[0-9A-Fa-f]-)\s*$")


def auto_not_phone(raw: str, before: str) -> str | None:
    """The documented rules that settle the phone candidates no table lists: dates and times
    (``03-05-2022``, ``11.14.2019 09``, ``06-10 12:32``), race times (``Bieg 10 63.69``), and
    bare digit runs in table cells, URLs, JSON or markup (timestamps, file sizes, totals). None:
    needs a hand review."""
    if DATE_START.match(raw):
        return "date"
    if re.fullmatch(r"\d+ \d+\.\d+", raw):
        return "decimal"
    if raw.isdigit() and (TABLE_OR_CODE.search(before) or "automerge]" in before):
        return "numeric_id"
    if re.fullmatch(r"(?:\d+-)+\d+", raw) and raw.count("-") >= 3 and before.endswith("："):
        return "order_id"  # 倍投：100-300-800-1600-3200, a betting progression
    return None


def label_natural(text: str) -> tuple[list[Span], list[Span]] | None:
    """(PII spans, negative spans) of a natural window, or None when it has an unlabelled or
    ambiguous candidate (the window is then left out)."""
    spans: list[Span] = []
    negatives: list[Span] = []
    for m in EMAIL_CAND.finditer(text):
        s, e = email_label(m.group(0), m.start())
        if text[s:e] in NATURAL_SKIP_EMAIL:
            return None
        if RETINA_FILE.search(text[s:e]):
            negatives.append(("code_at", s, e))  # fancybox_sprite@2x.png: a file name
        else:
            spans.append(("email", s, e))
    for m in IPV4_CAND.finditer(text):
        try:
            ip = ipaddress.IPv4Address(m.group(0))
        except ValueError:
            continue
        if any(s <= m.start() < e for _, s, e in spans):
            continue
        if m.group(0) in NATURAL_NOT_IP:
            negatives.append((NATURAL_NOT_IP[m.group(0)], m.start(), m.end()))
        elif ip.is_global:
            spans.append(("ip", m.start(), m.end()))
        else:
            negatives.append(("private_ip", m.start(), m.end()))
    taken = [(s, e) for _, s, e in spans]
    phone_occurrences = [(m.start(), m.end()) for number in sorted(NATURAL_PHONES, key=len, reverse=True)
                         for m in re.finditer(r"(?<![\d+])" + re.escape(number) + r"(?!\d)", text)]
    for m in UK_HELPLINE.finditer(text):
        spans.append(("phone", m.start(), m.end()))
        taken.append(m.span())
    for m in PHONE_CAND.finditer(text):
        raw = m.group(0).strip()
        s = m.start() + m.group(0).index(raw)
        if any(s < te and ts < s + len(raw) for ts, te in taken) or sum(c.isdigit() for c in raw) < 8:
            continue
        found = False
        for ls, le in phone_occurrences:
            if ls < s + len(raw) and s < le:
                found = True
                if not any(ls < te and ts < le for ts, te in taken):
                    spans.append(("phone", ls, le))
                    taken.append((ls, le))
        for cand, category in NATURAL_NOT_PHONE.items():
            if cand in raw:
                ns = s + raw.index(cand)
                negatives.append((category, ns, ns + len(cand)))
                found = True
        if found:
            continue
        auto = auto_not_phone(raw, text[max(0, s - 12) : s])
        if auto is None:
            UNREVIEWED.append(f"{raw!r} in: {text[max(0, s - 60) : s + 60]!r}")
        elif auto != "skip":
            negatives.append((auto, s, s + len(raw)))
    for category, pat in NEGATIVE_CANDS.items():
        for m in pat.finditer(text):
            if not any(m.start() < e and s < m.end() for _, s, e in spans + negatives):
                negatives.append((category, m.start(), m.end()))
    return sorted(spans, key=lambda x: x[1]), sorted(negatives, key=lambda x: x[1])


def cut_window(text: str, start: int, end: int, width: int = 320) -> tuple[int, int]:
    """Whole lines around [start, end); a long line is cut between two words, never inside a
    number or an address."""
    lo = text.rfind("\n", 0, max(0, start - width)) + 1
    hi = text.find("\n", min(len(text), end + width))
    hi = len(text) if hi == -1 else hi
    if start - lo > 2 * width:
        m = re.compile(r"(?<=[^\W\d_]) (?=[^\W\d_])").search(text, start - width, start)
        lo = m.end() if m else lo
    if hi - end > 2 * width:
        ms = list(re.compile(r"(?<=[^\W\d_]) (?=[^\W\d_])").finditer(text, end, end + width))
        hi = ms[-1].start() if ms else hi
    return lo, hi


def natural_records(data: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    neg_budget: Counter[str] = Counter()
    sources = list(page_texts(data)) + list(record_texts(data)) + list(book_texts(data))
    for src, text in sources:
        points: list[tuple[int, int, str]] = []
        for m in EMAIL_CAND.finditer(text):
            points.append((m.start(), m.end(), "pii"))
        for m in IPV4_CAND.finditer(text):
            points.append((m.start(), m.end(), "pii"))
        for m in PHONE_CAND.finditer(text):
            points.append((m.start(), m.end(), "pii"))
        for category, pat in NEGATIVE_CANDS.items():
            for m in list(pat.finditer(text))[:2]:
                points.append((m.start(), m.end(), category))
        windows: list[list[int]] = []
        for s, e, _ in sorted(points):
            lo, hi = cut_window(text, s, e)
            if windows and lo <= windows[-1][1]:
                windows[-1][1] = max(windows[-1][1], hi)
            else:
                windows.append([lo, hi])
        taken = 0
        for lo, hi in windows:
            if taken >= MAX_WINDOWS_PER_SOURCE:
                break
            piece = text[lo:hi]
            if len(piece) > 2500:  # a merged run of windows: keep its first 2,500 characters
                cut = piece.rfind("\n", 0, 2500)
                piece = piece[: cut if cut > 200 else 2500]
            labelled = label_natural(piece)
            if labelled is None:
                continue
            spans, negatives = labelled
            if not spans:
                cats = {c for c, _, _ in negatives}
                if not cats or all(neg_budget[c] >= 12 for c in cats):
                    continue
                for c in cats:
                    neg_budget[c] += 1
            taken += 1
            rows.append(record("natural", src, piece, spans, negatives))
    return rows


# ---------------------------------------------------------------------------------------------
# Planted cases: seeded synthetic PII in reserved ranges, inserted into real paragraphs
# ---------------------------------------------------------------------------------------------

FIRST = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
         "oscar", "peggy", "rupert", "sybil", "trent", "victor", "walter", "maria", "jose", "anna", "li",
         "mohammed", "fatima", "yuki", "olga", "pierre", "hans", "ingrid", "noor", "sean", "chloe"]
LAST = ["smith", "jones", "garcia", "muller", "dubois", "rossi", "kowalski", "tanaka", "nguyen", "silva",
        "okafor", "schmidt", "martin", "brown", "wilson", "haddad", "ivanova", "lindqvist", "obrien", "kim"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com", "dept.example.org",
           "students.example.edu.example", "shop.example", "example.com", "example.org"]
CARDS = [  # the networks' published test numbers (all Luhn-valid)
    "4111111111111111", "4012888888881881", "4242424242424242", "4000056655665556", "4222222222222",
    "5555555555554444", "5105105105105100", "2223003122003222", "5200828282828210",
    "378282246310005", "371449635398431", "378734493671000",
    "6011111111111117", "6011000990139424", "6011981111111113",
    "30569309025904", "38520000023237", "3530111333300000", "3566002020360505", "6200000000000005",
]
NANP_AREAS = ["201", "202", "212", "303", "312", "415", "503", "617", "702", "808", "919"]


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def gen_email(rng: random.Random) -> str:
    f, last = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice([f"{f}.{last}", f"{f[0]}{last}", f"{f}_{last}{rng.randint(1, 99)}", f"{f}+news",
                        f"{last}.{f}", f"{f}{rng.randint(1970, 2005)}", f"{f}-{last}", f"{f}", "info", "contact"])
    email = f"{local}@{rng.choice(DOMAINS)}"
    return email.title() if rng.random() < 0.08 else email


def gen_ipv4(rng: random.Random) -> str:
    net = rng.choice(["192.0.2", "198.51.100", "203.0.113"])
    return f"{net}.{rng.randint(1, 254)}"


def gen_ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(6)]
    form = rng.randrange(7)
    if form == 0:
        ip = "2001:db8:" + ":".join(groups)
    elif form == 1:
        ip = f"2001:db8::{groups[0]}"
    elif form == 2:
        ip = f"2001:db8:{groups[0]}:{groups[1]}::{groups[2]}"
    elif form == 3:
        ip = "2001:0db8:" + ":".join(g.zfill(4) for g in groups)
    elif form == 4:
        ip = f"2001:db8::{gen_ipv4(rng)}"
    elif form == 5:
        ip = f"::ffff:{gen_ipv4(rng)}"
    else:
        ip = f"2001:db8:{groups[0]}::{groups[1]}:{groups[2]}"
    return ip.upper() if rng.random() < 0.15 else ip


def gen_phone(rng: random.Random) -> str:
    """Numbers from ranges reserved for fiction: NANP 555-0100..0199, Ofcom's drama ranges
    (020 7946 0xxx, 0113 496 0xxx, 07700 900xxx), ARCEP's (01 99 00 xx xx, 06 39 98 xx xx),
    ACMA's (02 5550 xxxx, 0491 570 xxx)."""
    a, x = rng.choice(NANP_AREAS), rng.randint(100, 199)
    n3 = rng.randint(0, 999)
    n2a, n2b = rng.randint(0, 99), rng.randint(0, 99)
    forms = [
        f"({a}) 555-0{x}", f"{a}-555-0{x}", f"{a}.555.0{x}", f"+1 {a} 555 0{x}", f"+1-{a}-555-0{x}",
        f"1-{a}-555-0{x}", f"+1 ({a}) 555-0{x}",
        f"+44 20 7946 0{n3:03d}", f"020 7946 0{n3:03d}", f"0113 496 0{n3:03d}", f"+44 113 496 0{n3:03d}",
        f"07700 900{n3:03d}", f"+44 7700 900{n3:03d}", f"+44 (0)20 7946 0{n3:03d}",
        f"01 99 00 {n2a:02d} {n2b:02d}", f"+33 1 99 00 {n2a:02d} {n2b:02d}", f"06 39 98 {n2a:02d} {n2b:02d}",
        f"+33 6 39 98 {n2a:02d} {n2b:02d}", f"01.99.00.{n2a:02d}.{n2b:02d}",
        f"(02) 5550 {rng.randint(0, 9999):04d}", f"+61 2 5550 {rng.randint(0, 9999):04d}",
        f"0491 570 {rng.choice(['006', '156', '157', '158', '159', '110', '313', '737'])}",
        f"0044 20 7946 0{n3:03d}",
        # written the way people do, not tuned for: spaces only, "(0) " with a space
        f"{a} 555 0{x}", f"+44 (0) 20 7946 0{n3:03d}", f"+33 (0)1 99 00 {n2a:02d} {n2b:02d}",
        f"+61 (0)2 5550 {rng.randint(0, 9999):04d}",
    ]
    return rng.choice(forms)


def gen_card(rng: random.Random) -> tuple[str, bool]:
    """A test card number as people write it; True when written without separators."""
    num = rng.choice(CARDS)
    style = rng.randrange(4)
    if style == 3:
        return num, True
    sep = " " if style < 2 else "-"
    if len(num) == 15:
        groups = [num[:4], num[4:10], num[10:]]
    elif len(num) == 14:
        groups = [num[:4], num[4:10], num[10:]]
    elif len(num) == 13:
        groups = [num[:4], num[4:8], num[8:]]
    else:
        groups = [num[i : i + 4] for i in range(0, len(num), 4)]
    return sep.join(groups), False


# Templates: {email} {ip} {ip6} {phone} {card} {cardbare} are filled by the generators.
TEMPLATES: dict[str, dict[str, list[str]]] = {
    "en": {
        "email": ["For details, write to {email}.", "Readers can reach the author at {email}",
                  "(Contact: {email})", "Send your CV to <{email}> before Friday.", "mailto:{email}",
                  "E-mail: {email}", "Questions? Email “{email}” and we will reply.", "— {email}, {email}",
                  "Her address was {email}; his was {email}."],
        "ip": ["The request came from {ip}.", "Our server at {ip} was down for an hour.",
               "{ip} - - [10/Oct/2023:13:55:36 +0000] \"GET /index.html HTTP/1.1\" 200 2326",
               "Open http://{ip}/admin in a browser.", "Connect to {ip}:8080 to see the dashboard.",
               "IP address: {ip}", "ping {ip} returned no answer", "The login (from {ip}) was blocked.",
               "The IPv6 address {ip6} was logged.", "Reach it at [{ip6}]:443 over TLS.",
               "Client {ip6} connected at noon.", "inet6 {ip6} scope global"],
        "phone": ["Call {phone} for tickets.", "Tel.: {phone}", "Phone: {phone} (office hours only)",
                  "You can reach her on {phone}.", "Fax {phone}", "Questions? Ring {phone} or write to us.",
                  "Mobile {phone}; landline {phone}."],
        "card": ["My card number is {card}, please charge it.", "Visa: {card}", "Card {card} was declined.",
                 "credit card: {cardbare} exp 08/27", "Paid with {card} on Monday.",
                 "{cardbare} 12/29 cvv 123"],
    },
    "de": {
        "email": ["Zuschriften bitte an {email}.", "E-Mail: {email}", "Kontakt: {email} (Redaktion)"],
        "ip": ["Der Zugriff kam von der IP-Adresse {ip}.", "Server {ip} antwortet nicht.",
               "Die Adresse {ip6} wurde protokolliert."],
        "phone": ["Telefon: {phone}", "Rufen Sie uns an unter {phone}.", "Tel. {phone}, Fax {phone}"],
        "card": ["Kreditkarte: {card}", "Die Karte {card} wurde abgelehnt."],
    },
    "fr": {
        "email": ["Écrivez-nous à {email}.", "Courriel : {email}", "Contact : {email} (rédaction)"],
        "ip": ["La connexion venait de l'adresse IP {ip}.", "Le serveur {ip} ne répond plus.",
               "L'adresse {ip6} a été enregistrée."],
        "phone": ["Téléphone : {phone}", "Appelez le {phone} pour réserver.", "Tél. {phone}"],
        "card": ["Carte bancaire : {card}", "Le paiement avec la carte {card} a échoué."],
    },
    "ja": {
        "email": ["お問い合わせは{email}まで。", "連絡先：{email}", "メール{email}へ送ってください。"],
        "ip": ["接続元IPアドレス{ip}を記録しました。", "サーバー（{ip}）は停止中です。"],
        "phone": ["電話：{phone}", "TEL {phone}"],
        "card": ["カード番号：{card}"],
    },
}


def fill(template: str, rng: random.Random) -> tuple[str, list[Span]]:
    out, spans, pos = [], [], 0
    for m in re.finditer(r"\{(\w+)\}", template):
        out.append(template[pos : m.start()])
        field = m.group(1)
        offset = sum(map(len, out))
        if field == "email":
            value, kind = gen_email(rng), "email"
        elif field == "ip":
            value, kind = gen_ipv4(rng), "ip"
        elif field == "ip6":
            value, kind = gen_ipv6(rng), "ip"
        elif field == "phone":
            value, kind = gen_phone(rng), "phone"
        elif field == "card":
            value, kind = gen_card(rng)[0], "card"
        else:  # cardbare
            value, kind = rng.choice(CARDS), "card"
        out.append(value)
        spans.append((kind, offset, offset + len(value)))
        pos = m.end()
    out.append(template[pos:])
    return "".join(out), spans


ABBREVIATIONS = {"Mr", "Mrs", "Dr", "St", "M", "Mme", "Hr", "Fr", "Nr", "No", "vgl", "z.B", "Prof", "Sr", "Jr"}


def insert(para: str, snippet: str, spans: list[Span], rng: random.Random, sep: str = " ") -> tuple[str, list[Span]]:
    """Put the snippet after a random sentence end of the paragraph (or at its end)."""
    ends = [m.end() for m in re.finditer(r"[.!?][\"”’»)]? +|[。」]", para)
            if m.group(0)[0] in "。」" or (para[m.end() : m.end() + 1].isupper()
                                          and para[:m.start()].rsplit(" ", 1)[-1] not in ABBREVIATIONS)]
    ends = [e for e in ends if e < len(para)] + [len(para)]
    at = rng.choice(ends)
    before = para[:at]
    glue_l = "" if before.endswith((" ", "。", "」")) or sep == "" else sep
    glue_r = "" if para[at:].startswith(" ") or at == len(para) or sep == "" else sep
    text = before + glue_l + snippet + glue_r + para[at:]
    shift = len(before) + len(glue_l)
    return text, [(k, s + shift, e + shift) for k, s, e in spans]


# Hard negatives: ⟦...⟧ marks the look-alike; the key is its category.
NEGATIVES: dict[str, list[str]] = {
    "version": ["Upgrade to version ⟦1.2.3.4⟧ before Friday.", "The firmware v⟦2.0.1.3⟧ fixes the bug.",
                "It needs Python ⟦3.11.4.1⟧ or later.", "Build ⟦10.0.1.2⟧ is the last one.",
                "See the changelog of release ⟦4.2.1.7⟧.", "The OID arc is ⟦1.2.3.4.5⟧ in that MIB.",
                "Downloads: Iron ⟦83.0.4250.0⟧, Stinger ⟦12.2.0.79⟧, Zoom Player ⟦15.1.2⟧.",
                "Driver ⟦30.0.101.1960⟧ was released today.", "version: ⟦9.12.4.100⟧",
                "Update ⟦5.4.0.42⟧ brings new icons.", "Chrome ⟦120.0.6099.109⟧ is out.",
                "It ships as release ⟦101.44.3.200⟧.", "Apply patch ⟦2.6.32.27⟧ to the kernel."],
    "semver": ["Pin it to ⟦1.24.3⟧ for now.", "The tag ⟦2.0.0-rc.1⟧ is a pre-release.",
               "Version ⟦v3.2.1+build.5⟧ added logging.", "pip install numpy==⟦1.26.4⟧",
               "Node ⟦18.17.1⟧ and npm ⟦9.6.7⟧ are required.", "from ⟦0.9.12⟧ to ⟦0.10.1⟧"],
    "date": ["It opened on ⟦2024.01.15⟧.", "Stand: ⟦12.05.2023⟧", "Published ⟦2023-05-12⟧ at noon.",
             "Deadline ⟦15/01/2024⟧.", "Due ⟦01-15-2024⟧, no extensions.",
             "Timestamp ⟦2024-01-15T10:20:30Z⟧", "Born ⟦03.07.1961⟧ in Graz.", "⟦2018.04.05⟧ ~ OPEN RUN"],
    "time": ["The race finished in ⟦1:02:45⟧.", "Logged at ⟦23:59:59⟧ sharp.", "Kick-off ⟦20:45:00⟧ CET",
             "Duration ⟦00:02:15⟧ on average."],
    "decimal": ["Pi is about ⟦3.14159265⟧.", "The ratio was ⟦0.5772156649⟧.", "It cost ⟦1,234.56⟧ in total.",
                "A fever of ⟦101.3⟧ degrees.", "Growth reached ⟦12.5⟧ % in the quarter.",
                "Coordinates ⟦53.883301⟧, ⟦-1.266700⟧ mark the spot."],
    "oid": ["The OID ⟦2.5.4.3⟧ names the common name.", "Use OID ⟦1.3.6.1.4.1.311.21.8⟧ in the template.",
            "sha256WithRSAEncryption is ⟦1.2.840.113549.1.1.11⟧.", "snmpget ⟦1.3.6.1.2.1.1.5.0⟧",
            "Section ⟦4.1.2.3⟧ covers liability.", "See clause ⟦7.3.1.2⟧ of the contract."],
    "code_at": ["Decorate it with ⟦@app.route⟧('/users').", "Mark the method ⟦@Override⟧.",
                "⟦@media⟧ (max-width: 600px) hides the menu.", "Compute ⟦A@B.T⟧ for the projection.",
                "Use ⟦icon@2x.png⟧ on retina screens.", "Add ⟦logo@3x.jpg⟧ to the bundle.",
                "Run npm install ⟦lodash@4.17.21⟧.", "Install ⟦@babel/core@7.22.5⟧ first.",
                "Connect as ⟦user@localhost⟧ with the password.", "Clone ⟦git@github.com:org/repo.git⟧.",
                "Wrap it in ⟦@torch.no_grad()⟧.", "It runs as ⟦root@localhost⟧.",
                "Pull ⟦nginx@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31⟧.",
                "Tag the release ⟦react@18.2.0⟧.", "See ⟦weights@inputs.T⟧ in the notebook.",
                "Reflog entry ⟦HEAD@{1}⟧ shows it."],
    "handle": ["Follow ⟦@alice_smith⟧ for updates.", "Thanks to ⟦@example_org⟧ and ⟦@bobjones⟧!"],
    "isbn": ["ISBN ⟦978-0-306-40615-7⟧", "ISBN ⟦0-306-40615-2⟧ (paperback)", "ISBN-13: ⟦9780306406157⟧",
             "ISBN ⟦978-3-16-148410-0⟧"],
    "price": ["It sells for ⟦$1,299.99⟧.", "Preis: ⟦€ 1.299,00⟧", "A budget of ⟦USD 12,500,000⟧.",
              "Only ⟦£49.99⟧ today.", "The fee is ⟦¥ 120,000⟧.", "Kosten: ⟦1 299 €⟧",
              "G. ⟦1.121.319.953⟧ were lost."],
    "order_id": ["Order ⟦#100-300-800⟧ has shipped.", "Invoice ⟦INV-2024-000123⟧ is overdue.",
                 "Ticket ⟦4532-9981-221⟧ was closed.", "Tracking number ⟦1Z999AA10123456784⟧.",
                 "Case no. ⟦2023-CV-01234⟧.", "Order ⟦300-800-2400⟧ is pending."],
    "luhn_invalid": ["Card ⟦4111 1111 1111 1112⟧ failed the check.", "Number ⟦5555 5555 5555 4445⟧ is wrong.",
                     "Try ⟦3782 822463 10006⟧ again.", "card: ⟦6011111111111118⟧",
                     "The card ⟦4242-4242-4242-4243⟧ was rejected.", "Visa ⟦4012 8888 8888 1882⟧"],
    "numeric_id": ["Post ⟦2800731780195723⟧ went viral.", "ZVR-Zahl: ⟦248203332⟧",
                   "UID ⟦CHE-116.133.529⟧", "EAN ⟦4006381333931⟧", "Customer no. ⟦48213377025⟧",
                   "Session id ⟦9234567890123456⟧ expired.", "Account ⟦0001234567⟧ closed.",
                   "Serial ⟦1234 5678 9012 3452⟧ on the label.", "Record ⟦113077207386⟧ updated."],
    "year_range": ["He served from ⟦1990-2000⟧.", "The war of ⟦1914–1918⟧ changed it.",
                   "The ⟦2019-2020⟧ season ended early.", "See pages ⟦1032-1045⟧.", "© ⟦2005 - 2019⟧ Example Media"],
    "iban": ["IBAN: ⟦DE89 3704 0044 0532 0130 00⟧", "Konto ⟦GB82 WEST 1234 5698 7654 32⟧",
             "Virement sur ⟦FR14 2004 1010 0505 0001 3M02 606⟧."],
    "postal": ["Write to us at ⟦00-564⟧ Warszawa.", "Office in ⟦CH-6340⟧ Baar.", "London ⟦SW1A 1AA⟧",
               "Tampa, FL ⟦33701-1234⟧"],
    "private_ip": ["The router is at ⟦192.168.1.1⟧.", "Bind to ⟦127.0.0.1⟧ only.", "Netmask ⟦255.255.255.0⟧",
                   "The pod got ⟦10.0.0.138⟧.", "Gateway ⟦172.16.254.1⟧.", "Listen on ⟦0.0.0.0⟧:80.",
                   "Link-local ⟦fe80::1⟧ answered.", "Loopback is ⟦::1⟧.", "CGNAT gave ⟦100.64.1.2⟧."],
    "ipv6_like": ["Use ⟦std::vector⟧ here.", "Call ⟦Foo::Bar::baz()⟧ first.", "The MAC is ⟦00:1A:2B:3C:4D:5E⟧.",
                  "Write ⟦a::b⟧ in the grammar.", "Struct ⟦dead::beef⟧ is a joke.",
                  "The hash ⟦e1e7835a9b2f4d2b616ea077e2400ee0::⟧ prefixes the path.", "At ⟦12:30:45⟧ it rang."],
    "count": ["It had ⟦+10 000 000⟧ views.", "Population ⟦7 900 000 000⟧ and rising.",
              "The score was ⟦3-1⟧ after ⟦2-2⟧ at half time.", "About ⟦1 234 567⟧ residents.",
              "Die Gewinnzahlen: ⟦04 11 23 35 42 08⟧.", "Numbers drawn: ⟦02 14 27 31 44 09⟧",
              "Screen ⟦1920x1080⟧ at ⟦16:9⟧.", "UPC ⟦0 12345 67890 5⟧ on the box.",
              "It won ⟦2:1⟧ in the end.", "Read John ⟦3:16⟧ aloud."],
}


def parse_marked(snippet: str, category: str) -> tuple[str, list[Span]]:
    out, spans, pos = [], [], 0
    for m in re.finditer(r"⟦(.*?)⟧", snippet):
        out.append(snippet[pos : m.start()])
        offset = sum(map(len, out))
        out.append(m.group(1))
        spans.append((category, offset, offset + len(m.group(1))))
        pos = m.end()
    out.append(snippet[pos:])
    return "".join(out), spans


def planted_records(paras: dict[str, list[tuple[str, str]]]) -> list[dict[str, object]]:
    rng = random.Random(SEED)
    rows: list[dict[str, object]] = []
    plan = {"email": 110, "ip": 130, "phone": 110, "card": 60}
    for kind, n in plan.items():
        for i in range(n):
            lang = "en" if i % 5 < 3 else ("de", "fr", "ja")[i % 3]
            src, para = rng.choice(paras[lang])
            snippet, spans = fill(rng.choice(TEMPLATES[lang][kind]), rng)
            text, spans = insert(para, snippet, spans, rng, sep="" if lang == "ja" else " ")
            rows.append(record("planted", src, text, spans, []))
    # mixed: a contact block with several kinds and a hard negative
    for _ in range(40):
        src, para = rng.choice(paras["en"])
        parts: list[str] = []
        spans = []
        for kind in rng.sample(["email", "ip", "phone", "card"], rng.randint(2, 3)):
            line, sp = fill(rng.choice(TEMPLATES["en"][kind]), rng)
            base = sum(len(p) + 1 for p in parts)
            parts.append(line)
            spans += [(k, a + base, b + base) for k, a, b in sp]
        category = rng.choice(sorted(NEGATIVES))
        line, neg = parse_marked(rng.choice(NEGATIVES[category]), category)
        base = sum(len(p) + 1 for p in parts)
        parts.append(line)
        negs = [(k, a + base, b + base) for k, a, b in neg]
        # one line per item, as a contact block or a log excerpt has them
        text, moved = insert(para, "\n".join(parts), spans + negs, rng, sep="\n")
        rows.append(record("planted", src, text, [x for x in moved if x[0] in ("email", "ip", "phone", "card")],
                           [x for x in moved if x[0] not in ("email", "ip", "phone", "card")]))
    return rows


def negative_records(paras: dict[str, list[tuple[str, str]]]) -> list[dict[str, object]]:
    rng = random.Random(SEED + 1)
    rows: list[dict[str, object]] = []
    for category in sorted(NEGATIVES):
        for snippet_marked in NEGATIVES[category]:
            for _ in range(2):
                lang = rng.choice(["en", "en", "de", "fr"])
                src, para = rng.choice(paras[lang])
                snippet, negs = parse_marked(snippet_marked, category)
                text, negs = insert(para, snippet, negs, rng)
                rows.append(record("negative", src, text, [], negs))
    # random Luhn-invalid card-shaped numbers and Luhn-valid numbers without an issuer prefix
    for i in range(30):
        digits = "4" + "".join(str(rng.randint(0, 9)) for _ in range(15))
        while luhn_ok(digits):
            digits = digits[:-1] + str((int(digits[-1]) + 1) % 10)
        if i % 2:
            digits = "9" + digits[1:]
            while not luhn_ok(digits):
                digits = digits[:-1] + str((int(digits[-1]) + 1) % 10)
        shown = " ".join(digits[k : k + 4] for k in range(0, 16, 4))
        category = "numeric_id" if i % 2 else "luhn_invalid"
        src, para = rng.choice(paras["en"])
        snippet, negs = parse_marked(f"Reference ⟦{shown}⟧ is on the form.", category)
        text, negs = insert(para, snippet, negs, rng)
        rows.append(record("negative", src, text, [], negs))
    return rows


def record(case: str, source: str, text: str, spans: list[Span], negatives: list[Span]) -> dict[str, object]:
    return {"case": case, "source": source, "text": text,
            "spans": [{"kind": k, "start": s, "end": e} for k, s, e in spans],
            "negatives": [{"category": k, "start": s, "end": e} for k, s, e in negatives]}


def build() -> list[dict[str, object]]:
    data = shared()
    paras = prose_paragraphs(data)
    rows = natural_records(data) + planted_records(paras) + negative_records(paras)
    if UNREVIEWED:
        sys.exit("unreviewed phone candidates (add them to NATURAL_PHONES / NATURAL_NOT_PHONE):\n"
                 + "\n".join(sorted(set(UNREVIEWED))))
    out: list[dict[str, object]] = []
    seen: set[str] = set()
    for row in rows:
        text = str(row["text"])
        digest = hashlib.sha1(text.encode()).hexdigest()
        if digest in seen:  # the gov.uk re-crawl repeats pages of the first crawl
            continue
        seen.add(digest)
        out.append({"id": f"{str(row['case'])[:3]}-{len(out):04d}-{digest[:8]}", **row})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    args = ap.parse_args()
    rows = build()
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if args.check:
        same = OUT.read_text(encoding="utf-8") == body
        print("labelled.jsonl is up to date" if same else "labelled.jsonl differs from a fresh build")
        sys.exit(0 if same else 1)
    OUT.write_text(body, encoding="utf-8")
    kinds = Counter(s["kind"] for r in rows for s in r["spans"])  # type: ignore[attr-defined]
    cases = Counter((r["case"], s["kind"]) for r in rows for s in r["spans"])  # type: ignore[attr-defined]
    negs = Counter(n["category"] for r in rows for n in r["negatives"])  # type: ignore[attr-defined]
    print(f"{len(rows)} documents, {OUT.stat().st_size:,} bytes -> {OUT}")
    print("spans per kind:", dict(kinds))
    print("spans per (case, kind):", dict(sorted(cases.items())))
    print("documents per case:", dict(Counter(r["case"] for r in rows)))
    print("negative spans per category:", dict(sorted(negs.items())))


if __name__ == "__main__":
    main()
