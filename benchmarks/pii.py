"""PII masking: winnow's PiiMasker against datatrove's PIIFormatter (FineWeb's), same run.

Quality on tests/data/pii/labelled.jsonl (natural cases from the shared pages and WARC records,
planted synthetic PII in real paragraphs, planted hard negatives; see its README): precision,
recall and F1 per kind, span-exact and overlap, and false positives by negative category.
datatrove finds emails and IPv4 only (FineWeb's setting); it is run as is and with winnow's
address scope (documentation ranges count as public: the planted IPs use them), so that the
regexes are compared on equal terms.

Speed: the full visible text of every shared HTML page (html/ and the WARCs), the article
bodies of html/ground_truth.jsonl, and 2,000-character windows of the shared books (5,000+
documents), masked by both engines in this process on one core, best of
--repeat runs.

    python benchmarks/pii.py [--repeat 3] [--max-docs 6000]
"""

from __future__ import annotations

import argparse
import gzip
import ipaddress
import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable

from _common import REPO, machine, markdown_table, pin_to_one_core, shared_data

from winnow.filters.pii import PII_KINDS, PiiMasker

LABELLED = REPO / "tests" / "data" / "pii" / "labelled.jsonl"
Span = tuple[str, int, int]
DOC_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]


def datatrove_engine(scope: str) -> Callable[[str], list[Span]]:
    """Spans that datatrove's PIIFormatter replaces: its email regex on the text, then its IP
    regex + validator on the email-replaced text (its order), mapped back to the input."""
    from datatrove.pipeline.formatters.pii import PIIFormatter

    fmt = PIIFormatter()
    if scope == "winnow":
        def validator(s: str) -> bool:
            try:
                ip = ipaddress.ip_address(s)
            except ValueError:
                return False
            return ip.is_global or any(ip in n for n in DOC_NETS)
        fmt.ip_replacer.validator = validator
    email_re, ip_re, ip_ok = fmt.emails_replacer.regex, fmt.ip_replacer.regex, fmt.ip_replacer.validator
    placeholder = "\x00" * len("email@example.com")  # no digits: the IP regex cannot touch it

    def spans(text: str) -> list[Span]:
        out: list[Span] = []
        pieces, shifts, pos = [], [], 0  # shifts: (position in replaced text, offset to original)
        for m in email_re.finditer(text):
            out.append(("email", m.start(), m.end()))
            pieces.append(text[pos : m.start()])
            pieces.append(placeholder)
            pos = m.end()
            replaced_end = sum(map(len, pieces))
            shifts.append((replaced_end, m.end() - replaced_end))
        pieces.append(text[pos:])
        replaced = "".join(pieces)
        for m in ip_re.finditer(replaced):
            if ip_ok and not ip_ok(m.group(0)):
                continue
            shift = 0
            for at, off in shifts:
                if at <= m.start():
                    shift = off
            out.append(("ip", m.start() + shift, m.end() + shift))
        return sorted(out, key=lambda s: s[1])

    return spans


def check_datatrove_spans(rows: list[dict]) -> None:
    """The reconstructed spans must give exactly what PIIFormatter.format writes."""
    from datatrove.pipeline.formatters.pii import PIIFormatter

    fmt = PIIFormatter(email_replacement="<E>", ip_replacement="<I>")
    spans_of = datatrove_engine("datatrove")
    for row in rows:
        text, out, pos = row["text"], [], 0
        for kind, s, e in spans_of(text):
            out += [text[pos:s], "<E>" if kind == "email" else "<I>"]
            pos = e
        if "".join(out) + text[pos:] != fmt.format(text):
            raise SystemExit(f"datatrove span reconstruction differs from PIIFormatter on {row['id']}")


def winnow_engine(kinds: tuple[str, ...]) -> Callable[[str], list[Span]]:
    masker = PiiMasker(kinds=kinds)
    return lambda text: [(m.kind, m.start, m.end) for m in masker.find(text)]


def prf(tp_p: int, n_pred: int, tp_r: int, n_gold: int) -> tuple[float, float, float]:
    p = tp_p / n_pred if n_pred else 1.0
    r = tp_r / n_gold if n_gold else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def overlaps(a: Span, b: tuple[int, int]) -> bool:
    return a[1] < b[1] and b[0] < a[2]


def evaluate(rows: list[dict], spans_of: Callable[[str], list[Span]], kinds: tuple[str, ...]) -> dict:
    """Per kind: exact and overlap counts, recall by case; false positives by category."""
    stats: dict[str, Counter[str]] = {k: Counter() for k in kinds}
    fp_by_category: Counter[str] = Counter()
    for row in rows:
        gold = [(s["kind"], s["start"], s["end"]) for s in row["spans"]]
        negs = [(n["category"], n["start"], n["end"]) for n in row["negatives"]]
        pred = [p for p in spans_of(row["text"]) if p[0] in kinds]
        for kind in kinds:
            g = [s for s in gold if s[0] == kind]
            p = [s for s in pred if s[0] == kind]
            c = stats[kind]
            c["gold"] += len(g)
            c["pred"] += len(p)
            c["exact"] += len(set(g) & set(p))
            c["pred_overlap"] += sum(any(overlaps(x, (y[1], y[2])) for y in g) for x in p)
            c["gold_overlap"] += sum(any(overlaps(y, (x[1], x[2])) for x in p) for y in g)
            c[f"gold_{row['case']}"] += len(g)
            c[f"found_{row['case']}"] += sum(any(overlaps(y, (x[1], x[2])) for x in p) for y in g)
        for x in pred:
            if any(overlaps(x, (y[1], y[2])) for y in gold):
                continue
            cats = [n[0] for n in negs if overlaps(x, (n[1], n[2]))]
            fp_by_category[cats[0] if cats else "unlabelled"] += 1
    return {"stats": stats, "fp": fp_by_category}


def fmt3(x: float) -> str:
    return f"{x:.3f}"


def quality(rows: list[dict]) -> tuple[dict[str, Callable[[str], list[Span]]], dict[str, dict]]:
    engines: dict[str, tuple[Callable[[str], list[Span]], tuple[str, ...]]] = {
        "datatrove PIIFormatter": (datatrove_engine("datatrove"), ("email", "ip")),
        "datatrove, winnow's IP scope": (datatrove_engine("winnow"), ("email", "ip")),
        "winnow PiiMasker": (winnow_engine(PII_KINDS), PII_KINDS),
    }
    results = {name: evaluate(rows, fn, kinds) for name, (fn, kinds) in engines.items()}
    table = []
    for kind in PII_KINDS:
        for name, res in results.items():
            if kind not in res["stats"]:
                continue
            c = res["stats"][kind]
            pe, re_, fe = prf(c["exact"], c["pred"], c["exact"], c["gold"])
            po, ro, fo = prf(c["pred_overlap"], c["pred"], c["gold_overlap"], c["gold"])
            table.append({
                "kind": kind, "engine": name, "gold": c["gold"], "found": c["pred"],
                "P exact": fmt3(pe), "R exact": fmt3(re_), "F1 exact": fmt3(fe),
                "P overlap": fmt3(po), "R overlap": fmt3(ro), "F1 overlap": fmt3(fo),
                "R natural": fmt3(c["found_natural"] / c["gold_natural"]) if c["gold_natural"] else "-",
                "R planted": fmt3(c["found_planted"] / c["gold_planted"]) if c["gold_planted"] else "-",
            })
    print(markdown_table(table))
    categories = sorted({c for r in rows for c in (n["category"] for n in r["negatives"])} | {"unlabelled"})
    neg_counts = Counter(n["category"] for r in rows for n in r["negatives"])
    fp_rows = [{"negative category": c, "look-alikes": neg_counts.get(c, "-"),
                **{name: res["fp"].get(c, 0) for name, res in results.items()}} for c in categories]
    fp_rows.append({"negative category": "**total**", "look-alikes": sum(neg_counts.values()),
                    **{name: sum(res["fp"].values()) for name, res in results.items()}})
    print("\nFalse positives (found spans overlapping no labelled PII) by the look-alike they hit:\n")
    print(markdown_table(fp_rows))
    return {name: fn for name, (fn, _) in engines.items()}, results


def speed_corpus(max_docs: int) -> tuple[list[str], int]:
    from resiliparse.extract.html2text import extract_plain_text
    from warcio.archiveiterator import ArchiveIterator

    from winnow.charset import decode_html

    data = shared_data()
    pages = []
    for sub in ("html/pages", "html/trafilatura_eval/pages"):
        for path in sorted((data / sub).glob("*.html.gz")):
            pages.append(extract_plain_text(decode_html(gzip.open(path).read(), None)[0], main_content=False))
    for path in sorted((data / "warc").glob("*.warc*")):
        if path.name == "pages.warc.gz" or "brotli" in path.name:  # = html/pages; warcio cannot read br
            continue
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh):
                ctype = rec.http_headers.get_header("Content-Type") if rec.http_headers else None
                if rec.rec_type == "response" and ctype and "html" in ctype:
                    html = decode_html(rec.content_stream().read(), None)[0]
                    pages.append(extract_plain_text(html, main_content=False))
    pages += [json.loads(line)["text"] for line in open(data / "html" / "ground_truth.jsonl", encoding="utf-8")]
    books = []
    for path in sorted((data / "text").glob("*/*.txt.gz")):
        text = re.sub(r"(?<!\n)\n(?!\n)", " ", gzip.open(path, "rt", encoding="utf-8").read())
        books += [text[i : i + 2000] for i in range(0, len(text) - 2000, 2000)]
    tagged = [(True, t) for t in pages] + [(False, t) for t in books]
    random.Random(0).shuffle(tagged)
    tagged = tagged[:max_docs]
    return [t for _, t in tagged], sum(is_page for is_page, _ in tagged)


def speed(docs: list[str], repeat: int) -> list[dict[str, object]]:
    from datatrove.pipeline.formatters.pii import PIIFormatter

    dt = PIIFormatter()
    default = PiiMasker()
    everything = PiiMasker(kinds=PII_KINDS)
    runs: dict[str, Callable[[str], object]] = {
        "datatrove PIIFormatter (email + IPv4)": dt.format,
        "winnow PiiMasker (email + ip, the default)": default.mask,
        "winnow PiiMasker (all kinds: + phone, card)": everything.mask,
    }
    best = {name: float("inf") for name in runs}
    for _ in range(repeat):  # interleaved, so load changes on the machine hit every engine alike
        for name, fn in runs.items():
            t0 = time.perf_counter()
            for d in docs:
                fn(d)
            best[name] = min(best[name], time.perf_counter() - t0)
    mb = sum(len(d.encode()) for d in docs) / 1e6
    base = best["datatrove PIIFormatter (email + IPv4)"]
    changed = {"datatrove PIIFormatter (email + IPv4)": sum(dt.format(d) != d for d in docs),
               "winnow PiiMasker (email + ip, the default)": sum(bool(default.mask(d)[1]) for d in docs),
               "winnow PiiMasker (all kinds: + phone, card)": sum(bool(everything.mask(d)[1]) for d in docs)}
    return [{"engine": name, "docs/s (1 core)": f"{len(docs) / t:,.0f}", "MB/s": f"{mb / t:.1f}",
             "µs/doc": f"{1e6 * t / len(docs):.1f}", "vs datatrove": f"{base / t:.2f}x",
             "docs changed": changed[name]} for name, t in best.items()]


def disagreements(docs: list[str]) -> None:
    """Where the two engines differ on the real speed corpus (no labels there: read them)."""
    dt, wn = datatrove_engine("datatrove"), winnow_engine(("email", "ip"))
    only: dict[str, Counter[str]] = {"datatrove only": Counter(), "winnow only": Counter()}
    for d in docs:
        a, b = set(dt(d)), set(wn(d))
        for name, spans in (("datatrove only", a - b), ("winnow only", b - a)):
            for kind, s, e in spans:
                only[name][f"{kind} `{d[s:e]}` ({d[max(0, s - 25):s].split(chr(10))[-1].strip()}…)"] += 1
    for name, c in only.items():
        print(f"\n{name} on the speed corpus: {sum(c.values())} spans"
              + "".join(f"\n  * {k}" + (f" x{n}" if n > 1 else "") for k, n in c.most_common(12)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--max-docs", type=int, default=6000)
    args = ap.parse_args()
    pin_to_one_core()
    rows = [json.loads(line) for line in open(LABELLED, encoding="utf-8")]
    cases = ", ".join(f"{n} {case}" for case, n in sorted(Counter(r["case"] for r in rows).items()))
    print(f"\nLabelled set: {len(rows)} documents ({cases}), {sum(len(r['spans']) for r in rows)} PII spans, "
          f"{sum(len(r['negatives']) for r in rows)} labelled look-alikes ({machine()})\n")
    check_datatrove_spans(rows)
    quality(rows)
    docs, n_pages = speed_corpus(args.max_docs)
    chars = sum(map(len, docs)) / len(docs)
    print(f"\nSpeed: {len(docs):,} documents ({n_pages} web pages and article bodies, the rest book windows), "
          f"{chars:,.0f} characters on average, best of {args.repeat}, one core\n")
    print(markdown_table(speed(docs, args.repeat)))
    disagreements(docs)


if __name__ == "__main__":
    main()
