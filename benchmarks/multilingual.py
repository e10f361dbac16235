"""Per-language quality settings: what each rule removes, per language, with today's English-only
settings against the FineWeb-2 settings of the document's language; and datatrove's URL safety
lists against winnow's implementation of them (same decisions, urls/s).

Quality part. Every document gets its lid.176 label (winnow's LID, as the quality stage will
key on it). "English settings" is today's stage: all four rule sets, English stop words, spaCy
"en" words. "Own settings" is ``settings_for(label)``. A removed document counts under its first
failing rule (filter mode, the funnel's reason); the stop-word check is also run on its own.
Corpora:

* the LID dev set (../shared/data/lid/dev.jsonl), one text per document (median 67 characters:
  almost all are too short for any setting, but they show the stop-word rule);
* the same dev set's sentences joined ten per document (one per line, per gold language);
* the non-English pages of the shared WARCs (text extracted by winnow's ingest stage);
* the non-English pages of the trafilatura evaluation set (../shared/data/html/trafilatura_eval).

Agreement part: FineWeb-2's own filtering step (fineweb-2-pipeline.py step 5 through datatrove, with
upstream's values and datatrove's word tokenizers; tests/helpers/fineweb2.py) against winnow's rules,
per language, on the LID dev set (gold labels) and the shared WARC pages (lid.176 labels): the share of
documents with the same decision (first failing rule, or kept). tests/peer/test_fineweb2_filtering.py
asserts 100%.

URL part: every WARC-Target-URI of the shared WARCs and every absolute link in their pages,
decided by datatrove's ``URLFilter()`` and by ``load_safety_lists(["fineweb"])``.

    python benchmarks/multilingual.py [--only quality|agreement|urls] [--max-dev-texts N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urljoin

from _common import REPO, machine, markdown_table, pin_to_one_core, shared_data

from winnow.charset import decode_html
from winnow.extract import get_extractor
from winnow.filters.lid import FastTextLID
from winnow.filters.multilingual import bundled_configs, settings_for
from winnow.filters.quality import RULESETS, apply_rules, build_rulesets
from winnow.filters.safety_lists import SafetyLists
from winnow.filters.words import CachedSpacyTokenizer
from winnow.stats import StageStats
from winnow.storage import open_binary
from winnow.tasks.ingest import IngestConfig, ingest_warc
from winnow.warc import iter_http_responses

STOP_RULE = "gopher_quality:gopher_enough_stop_words"
HREF = re.compile(rb"""href\s*=\s*["']([^"'#\s<>]+)""", re.IGNORECASE)


# ------------------------------------------------------------------ corpora


def _dev_rows(data: Path) -> list[dict]:
    with open(data / "lid" / "dev.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def dev_texts(data: Path, limit: int | None) -> list[str]:
    return [r["text"] for r in _dev_rows(data)[:limit]]


def dev_documents(data: Path) -> list[str]:
    by_lang: dict[str, list[str]] = defaultdict(list)
    for r in _dev_rows(data):
        if r["kind"] == "sentence":
            by_lang[r["lang"]].append(r["text"])
    return ["\n".join(sents[i : i + 10]) for _, sents in sorted(by_lang.items()) for i in range(0, len(sents), 10)]


def warc_pages(data: Path) -> list[str]:
    cfg = IngestConfig()
    return [d.text for p in sorted((data / "warc").glob("*.warc*")) for d in ingest_warc(str(p), cfg, StageStats())]


def html_pages(data: Path) -> list[str]:
    extract = get_extractor("resiliparse")
    out = []
    for path in sorted((data / "html" / "trafilatura_eval" / "pages").glob("*.html.gz")):
        with gzip.open(path) as fh:
            html, _ = decode_html(fh.read(), None)
        text = extract(html)
        if text.strip():
            out.append(text)
    return out


# ------------------------------------------------------------------ quality


ONLY_STOP_WORDS = {"min_doc_words": None, "max_doc_words": None, "min_avg_word_length": None,
                   "max_avg_word_length": None, "max_symbol_word_ratio": None, "max_bullet_lines_ratio": None,
                   "max_ellipsis_lines_ratio": None, "max_non_alpha_words_ratio": None}


class Rules:
    """Today's English rule sets and each language's own (built once), plus the stop-word check
    of each on its own: Gopher quality stops at its first failing check, so on short texts the
    stop-word check is rarely reached."""

    def __init__(self) -> None:
        en = CachedSpacyTokenizer("en")
        self.english = build_rulesets(list(RULESETS), {}, en)
        self.english_stop = build_rulesets(["gopher_quality"], {"gopher_quality": ONLY_STOP_WORDS}, en)
        self._own: dict[str, tuple[list, list]] = {}

    def own(self, label: str) -> tuple[str, list, list]:
        s = settings_for(label)
        if s.name not in self._own:
            params = s.quality_params()
            stop = {"gopher_quality": {**params["gopher_quality"], **ONLY_STOP_WORDS}}
            tok = s.tokenizer()
            self._own[s.name] = (build_rulesets(list(s.rules), params, tok),
                                 build_rulesets(["gopher_quality"], stop, tok))
        return (s.name, *self._own[s.name])


def evaluate(texts: list[str], lid: FastTextLID, rules: Rules, skip_english: bool) -> dict[str, dict]:
    """Per LID label: documents, and the rule that drops each one (filter mode: the first
    failing rule, the funnel's reason) with English and with own settings."""
    per: dict[str, dict] = {}
    for text in texts:
        label, _ = lid.predict(text)
        if skip_english and label == "en":
            continue
        name, own, own_stop = rules.own(label)
        row = per.setdefault(label, {"settings": name, "docs": 0, "before": Counter(), "after": Counter(),
                                     "stop_before": 0, "stop_after": 0})
        row["docs"] += 1
        _, failed_en = apply_rules(rules.english, text, stop_at_first=True)
        _, failed_own = apply_rules(own, text, stop_at_first=True)
        row["before"][failed_en[0] if failed_en else "kept"] += 1
        row["after"][failed_own[0] if failed_own else "kept"] += 1
        row["stop_before"] += bool(apply_rules(rules.english_stop, text, stop_at_first=True)[1])
        row["stop_after"] += bool(apply_rules(own_stop, text, stop_at_first=True)[1])
    return per


def summary_rows(corpus: str, per: dict[str, dict]) -> list[dict[str, object]]:
    rows = []
    for label, r in sorted(per.items(), key=lambda kv: (-kv[1]["docs"], kv[0])):
        s = settings_for(label)
        rows.append({
            "corpus": corpus, "lang": label, "settings": r["settings"] + (" (fallback)" if s.fallback else ""),
            "docs": r["docs"],
            "removed: en settings": r["docs"] - r["before"]["kept"], "removed: own": r["docs"] - r["after"]["kept"],
            "of them by stop words: en → own": f"{r['before'][STOP_RULE]} → {r['after'][STOP_RULE]}",
            "stop-word check alone: en → own": f"{r['stop_before']} → {r['stop_after']}",
        })
    return rows


def rule_rows(corpus: str, per: dict[str, dict]) -> list[dict[str, object]]:
    rows = []
    for label, r in sorted(per.items(), key=lambda kv: (-kv[1]["docs"], kv[0])):
        for rule in sorted((set(r["before"]) | set(r["after"])) - {"kept"}):
            rows.append({"corpus": corpus, "lang": label, "docs": r["docs"], "rule": rule,
                         "removed: en settings": r["before"][rule], "removed: own": r["after"][rule]})
    return rows


def quality_part(data: Path, max_dev: int | None) -> None:
    lid = FastTextLID()
    rules = Rules()
    corpora = [
        ("dev: texts", dev_texts(data, max_dev), True),
        ("dev: 10 sentences/doc", dev_documents(data), True),
        ("WARC pages", warc_pages(data), True),
        ("trafilatura-eval pages", html_pages(data), True),
    ]
    summary: list[dict[str, object]] = []
    detail: list[dict[str, object]] = []
    langs: set[str] = set()
    bundled = set(bundled_configs())
    t0 = time.perf_counter()
    for corpus, texts, skip_en in corpora:
        per = evaluate(texts, lid, rules, skip_en)
        langs |= set(per)
        summary += summary_rows(corpus, per)
        detail += rule_rows(corpus, per)
    elapsed = time.perf_counter() - t0
    print(f"## Quality rules per language: English-only settings vs own settings ({machine()}, {elapsed:.0f} s)\n")
    print("Documents labelled `en` by LID are left out (their settings are today's). 'removed' is filter "
          "mode: each document counts once, under its first failing rule (the funnel's reason); 'by stop "
          f"words' are those whose reason is `{STOP_RULE}`. 'stop-word check alone' runs only that check "
          "(Gopher quality stops at its first failing check, so on short texts it is rarely reached).\n")
    print(markdown_table(summary))
    print("\n<details><summary>Every rule, per language (documents it removes, filter mode)</summary>\n")
    print(markdown_table(detail))
    print("\n</details>\n")
    fallbacks = sorted({(s.name, s.fallback) for s in map(settings_for, langs) if s.fallback and s.name in bundled})
    if fallbacks:
        print("Bundled settings with a tokenizer fallback here (languages without bundled settings use "
              "datatrove's defaults with the stop-word rule off):\n")
        for name, why in fallbacks:
            print(f"* `{name}`: {why}")
        print()


# ------------------------------------------------------------------ agreement with FineWeb-2


def agreement_part(data: Path) -> None:
    import sys

    sys.path.insert(0, str(REPO / "tests"))
    from helpers import fineweb2 as fw

    per: dict[str, Counter] = defaultdict(Counter)
    t0 = time.perf_counter()
    for corpus, name, text in [*fw.dev_corpora(data), *fw.warc_corpus(data)]:
        if name in fw.NOT_COMPARABLE:
            continue
        ours = fw.winnow_decision(name, text)
        per[name][corpus] += 1
        per[name]["same"] += fw.datatrove_decision(name, text) == ours
        per[name]["kept"] += ours is None
    elapsed = time.perf_counter() - t0
    corpora = ("dev: texts", "dev: 10 sentences/doc", "WARC pages")
    rows = []
    for name, c in sorted(per.items()):
        n = sum(c[k] for k in corpora)
        s = settings_for(name)
        rows.append({"language": name, "datatrove tokenizer": s.datatrove_tokenizer,
                     "winnow tokenizer": s.word_tokenizer, **{k: c[k] for k in corpora}, "kept": c["kept"],
                     "same decision": f"{c['same']}/{n} ({100 * c['same'] / n:.1f}%)"})
    same = sum(c["same"] for c in per.values())
    total = sum(sum(c[k] for k in corpora) for c in per.values())
    print(f"## Agreement with FineWeb-2's filtering step, per language ({machine()}, {elapsed:.0f} s)\n")
    print(markdown_table(rows))
    print(f"\nSame decision on {same:,} of {total:,} documents ({100 * same / total:.2f}%). Not compared: "
          + "; ".join(f"`{k}`: {v}" for k, v in fw.NOT_COMPARABLE.items()) + ".\n")


# ------------------------------------------------------------------ URL safety lists


def warc_urls(data: Path) -> list[str]:
    records, links = [], []
    for path in sorted((data / "warc").glob("*.warc*")):
        with open_binary(str(path), None) as fh:
            for r in iter_http_responses(fh, StageStats(), str(path), 10_000_000):  # type: ignore[arg-type]
                if not r.url:
                    continue
                records.append(r.url)
                for m in HREF.findall(r.body or b""):
                    try:
                        u = urljoin(r.url, m.decode("utf-8", "replace"))
                    except ValueError:
                        continue
                    if u.startswith(("http://", "https://")):
                        links.append(u)
    return list(dict.fromkeys(records + links))


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


def datatrove_filter(tmp: str):
    from datatrove.pipeline.filters import url_filter
    from tldextract import TLDExtract

    url_filter.cached_assets_path = lambda **_: tmp  # extract the lists here, not into ~/.cache
    f = url_filter.URLFilter()
    f.tldextractor = TLDExtract(cache_dir=None, suffix_list_urls=())  # the PSL snapshot winnow uses
    f.download_data()
    return f


def urls_part(data: Path) -> None:
    from datatrove.data import Document as DTDocument

    urls = warc_urls(data)
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rss0 = _rss_mb()
        t0 = time.perf_counter()
        mine_cold = SafetyLists(["fineweb"], cache_dir=Path(tmp) / "cache")
        load_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        mine = SafetyLists(["fineweb"], cache_dir=Path(tmp) / "cache")
        load_warm = time.perf_counter() - t0
        del mine_cold
        rss1 = _rss_mb()
        t0 = time.perf_counter()
        ours = [mine.match(u) for u in urls]
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for u in urls:
            mine.match(u)
        again = time.perf_counter() - t0

        rss2 = _rss_mb()
        t0 = time.perf_counter()
        dt = datatrove_filter(tmp)
        dt_load = time.perf_counter() - t0
        rss3 = _rss_mb()
        t0 = time.perf_counter()
        theirs = []
        for u in urls:
            r = dt.filter(DTDocument(text="", id="", metadata={"url": u}))
            theirs.append(None if r is True else r[1])
        dt_time = time.perf_counter() - t0
    agree = sum((m.datatrove_reason if m else None) == t for m, t in zip(ours, theirs, strict=True))
    blocked = Counter(m.reason for m in ours if m)
    rows.append({"engine": "datatrove URLFilter()", "load s": f"{dt_load:.2f}", "RSS MB": f"{rss3 - rss2:.0f}",
                 "urls/s": f"{len(urls) / dt_time:,.0f}", "vs datatrove": "1.0x"})
    rows.append({"engine": "winnow SafetyLists, hosts first seen", "load s": f"{load_cold:.2f} (disk cache: {load_warm:.2f})",
                 "RSS MB": f"{rss1 - rss0:.0f}", "urls/s": f"{len(urls) / first:,.0f}",
                 "vs datatrove": f"{dt_time / first:.1f}x"})
    rows.append({"engine": "winnow SafetyLists, hosts seen before", "load s": "", "RSS MB": "",
                 "urls/s": f"{len(urls) / again:,.0f}", "vs datatrove": f"{dt_time / again:.1f}x"})
    print(f"## URL safety lists: {len(urls):,} URLs of the shared WARCs (records + links), one core ({machine()})\n")
    print(markdown_table(rows))
    print(f"\nSame decision as datatrove on {agree:,} of {len(urls):,} URLs; blocked: "
          + ", ".join(f"{k} {v}" for k, v in sorted(blocked.items())) + ".\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["quality", "agreement", "urls"])
    ap.add_argument("--max-dev-texts", type=int, default=None, help="first N texts of the dev set (default all)")
    args = ap.parse_args()
    pin_to_one_core()
    data = shared_data()
    if args.only in (None, "quality"):
        quality_part(data, args.max_dev_texts)
    if args.only in (None, "agreement"):
        agreement_part(data)
    if args.only in (None, "urls"):
        urls_part(data)


if __name__ == "__main__":
    main()
