"""Benchmark decontamination against datatrove's n-gram decontamination, same run, same documents,
same eval items: docs/s, agreement on which documents are flagged, index build time and memory
per million eval n-grams, and scaling of both to ~2M eval n-grams.

Eval sets: the three small eval-style benchmarks of tests/data/decontam (made from public-domain
text by ``--make-test-data``, below), then growing sets of "items" (paragraphs of 13+ words) from
all of ../shared/data/text for the scaling runs. Documents: the planted corpus of
tests/data/decontam plus the 127 article bodies of ../shared/data/html and 4,400-character
windows of the Gutenberg books (as benchmarks/quality.py), one core.

datatrove's ``NGramsDecontIndexer`` gets its items from lighteval (not installed, and it would
download the tasks); its ``compute_hashes`` is called here on our items directly (label = the
item's whole text, no query: all n-grams of the item, as winnow indexes them) and the hashes are
written as its ``run()`` writes them (``<task>.index.hashes``, raw uint64), so its
``NGramsDecontFilter`` loads them with its own loader.

    python benchmarks/decontam.py [--max-docs 2000] [--scale 10000,100000,1000000,all]
    python benchmarks/decontam.py --make-test-data   # regenerate tests/data/decontam (seed 0)
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import random
import re
import tempfile
import time
import tracemalloc
import unicodedata
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _common import REPO, machine, markdown_table, pin_to_one_core, shared_data
from loguru import logger

from winnow.filters.decontam import NGramIndex, load_eval_sets, normalized_words

TEST_DATA = REPO / "tests" / "data" / "decontam"
N = 13


# --------------------------------------------------------------------------- test data

def _unwrap(text: str) -> str:
    return re.sub(r"(?<!\n)\n(?!\n)", " ", text)


def _sentences(text: str) -> list[str]:
    return [re.sub(r"\s+", " ", s).strip() for s in re.split(r"(?<=[.!?;])\s+", _unwrap(text)) if s.strip()]


def _paragraphs(text: str) -> list[str]:
    return [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def _read(path: Path) -> str:
    return gzip.open(path, "rt", encoding="utf-8").read()


def _grams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def reference_flags(doc: str, eval_sets: dict[str, list[str]], n: int = N, min_words: int = 8) -> list[str]:
    """Brute force, independent of the index's hashing: benchmarks with an item sharing an
    n-gram with ``doc`` (a whole item of min_words..n-1 words counts as one n-gram)."""
    words = normalized_words(doc)
    doc_grams = _grams(words, n)
    out: set[str] = set()
    for name, items in eval_sets.items():
        for item in items:
            iw = normalized_words(item)
            long_hit = len(iw) >= n and bool(_grams(iw, n) & doc_grams)
            if long_hit or (min_words <= len(iw) < n and tuple(iw) in _grams(words, len(iw))):
                out.add(name)
    return sorted(out)


def _windows(text: str, size: int, rng: random.Random, count: int) -> list[str]:
    """``count`` windows of about ``size`` characters starting and ending at sentence breaks."""
    sents = _sentences(text)
    out: list[str] = []
    for _ in range(count * 4):
        if len(out) == count:
            break
        i = rng.randrange(len(sents))
        win: list[str] = []
        while i < len(sents) and sum(map(len, win)) < size:
            win.append(sents[i])
            i += 1
        if sum(map(len, win)) >= size * 0.8:
            out.append(" ".join(win))
    return out


def _case_punct(text: str, style: int) -> str:
    """A copy as it might appear on a web page: case, punctuation and spacing changed, words kept."""
    if style == 0:
        return text.upper()
    if style == 1:
        return re.sub(r"[^\w\s]", " ", text).lower()
    if style == 2:
        return "“" + re.sub(r"\s+", "  ", text).replace(",", " ,").replace(".", "!").replace("'", "\u2019") + "”"
    return re.sub(r"\s+", "\n", text.title())


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _span_of_words(text: str, count: int, rng: random.Random) -> str:
    """A run of whitespace-separated tokens of ``text`` that normalises to exactly ``count`` words."""
    tokens = text.split()
    starts = list(range(len(tokens)))
    rng.shuffle(starts)
    for start in starts:
        for end in range(start + 1, len(tokens) + 1):
            got = len(normalized_words(" ".join(tokens[start:end])))
            if got == count:
                return " ".join(tokens[start:end])
            if got > count:
                break
    raise ValueError(f"no run of {count} words in {text[:60]!r}")


def _plant(doc: str, insert: str, rng: random.Random, paragraph: bool) -> str:
    breaks = [m.end() for m in re.finditer(r"(?<=[.!?])\s+", doc)]
    at = breaks[len(breaks) // 3 + rng.randrange(max(len(breaks) // 3, 1))] if breaks else len(doc)
    sep = "\n\n" if paragraph else " "
    return doc[:at].rstrip() + sep + insert + sep + doc[at:].lstrip()


def make_test_data(out: Path = TEST_DATA, seed: int = 0) -> None:
    """Write three eval-style benchmarks and a contaminated corpus, all from public-domain text of
    ../shared/data/text, checking every expected label against the brute-force reference."""
    rng = random.Random(seed)
    data = shared_data() / "text"
    out.mkdir(parents=True, exist_ok=True)

    # 1. gutenberg_cloze.jsonl: question = a Moby-Dick sentence with one word blanked, answer = it.
    sents = [s for s in _sentences(_read(data / "gutenberg" / "melville-moby_dick.txt.gz"))
             if s[:1].isupper() and "CHAPTER" not in s and "_" not in s]
    by_len = {"long": [s for s in sents if 16 <= len(s.split()) <= 45],
              "short": [s for s in sents if 9 <= len(s.split()) <= 12],
              "tiny": [s for s in sents if 5 <= len(s.split()) <= 6]}
    digits = [s for s in by_len["long"] if re.search(r"\d", s)]
    chosen = rng.sample(digits, 2) + rng.sample(by_len["long"], 34) + rng.sample(by_len["short"], 3) \
        + rng.sample(by_len["tiny"], 2)
    cloze = []
    for i, s in enumerate(chosen):
        words = s.split()
        cands = [j for j, w in enumerate(words) if w.isalpha() and len(w) >= 5] or [len(words) - 1]
        j = rng.choice(cands)
        cloze.append({"id": f"cloze-{i:03d}", "question": " ".join([*words[:j], "____", *words[j + 1 :]]),
                      "answer": words[j]})
    with open(out / "gutenberg_cloze.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in cloze)

    # 2. genesis_completion.parquet: HellaSwag-style ctx + 4 endings (KJV Genesis), label = gold.
    verses = [s for s in _sentences(_read(data / "genesis" / "en_kjv.txt.gz")) if 28 <= len(s.split()) <= 60]
    picked = rng.sample(verses, 30)
    rows = []
    for i, v in enumerate(picked):
        w = v.split()
        half = len(w) // 2
        others = rng.sample([x for x in verses if x != v], 3)
        endings = [" ".join(w[half:])] + [" ".join(o.split()[len(o.split()) // 2 :]) for o in others]
        order = list(range(4))
        rng.shuffle(order)
        rows.append({"ind": i, "ctx": " ".join(w[:half]), "endings": [endings[k] for k in order],
                     "label": order.index(0), "source_id": f"genesis-kjv-{i:03d}"})
    pq.write_table(pa.Table.from_pylist(rows), out / "genesis_completion.parquet")

    # 3. eltec_qa/ (two shards): SQuAD-style passage + query + answers{text, answer_start},
    #    from paragraphs of five ELTeC novels (fr, de, es, it, pt).
    qa_src = ["fr_FRA02001_Gilbert", "de_DEU012", "es_SPA3026_LeopoldoAlas_Pipa", "it_IT18830_Boito_Senso",
              "pt_POR0048_BulPat_Palida"]
    qa: list[dict[str, Any]] = []
    for src in qa_src:
        paras = [p for p in _paragraphs(_read(data / "eltec" / f"{src}.txt.gz")) if 40 <= len(p.split()) <= 110]
        for p in rng.sample(paras, 4):
            w = p.split()
            j = rng.randrange(3, len(w) - 1)
            qa.append({"id": f"{src}-{len(qa):03d}", "passage": p,
                       "query": f"Which word follows \"{' '.join(w[j - 3 : j])}\" in the passage?",
                       "answers": {"text": [w[j]], "answer_start": [len(" ".join(w[:j])) + 1]}})
    (out / "eltec_qa").mkdir(exist_ok=True)
    for shard in range(2):
        with open(out / "eltec_qa" / f"test-{shard:05d}-of-00002.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in qa[shard::2])

    eval_sets = load_eval_sets([str(out / "gutenberg_cloze.jsonl"), str(out / "genesis_completion.parquet"),
                                str(out / "eltec_qa")])
    items = {name: list(v) for name, v in eval_sets.items()}

    # Clean documents: sources disjoint from the eval sets, each checked clean by brute force.
    clean_src = ([(data / "gutenberg" / f"{b}.txt.gz", 14) for b in ("chesterton-brown", "whitman-leaves",
                                                                    "austen-emma", "milton-paradise")]
                 + [(data / "genesis" / "en_web.txt.gz", 10)]
                 + [(data / "eltec" / f"{b}.txt.gz", 3) for b in ("fr_FRA00101_Adam", "de_DEU060",
                                                                  "es_SPA4001_TrigoFelipe_ATodoHonor",
                                                                  "it_IT19070_Capuana_Un-Vampiro",
                                                                  "pt_POR0066_VirCA_Innocente")])
    pool: list[tuple[str, str]] = []
    for path, count in clean_src:
        for window in _windows(_read(path), 2500, rng, count):
            if not reference_flags(window, items):
                pool.append((path.name.removesuffix(".txt.gz"), window))
    rng.shuffle(pool)
    docs: list[dict[str, Any]] = []

    def add(kind: str, insert: str | None, expect: list[str], paragraph: bool = True) -> None:
        for _ in range(20):
            source, base = pool.pop()
            text = base if insert is None else _plant(base, insert, rng, paragraph)
            if reference_flags(text, items) == expect:
                docs.append({"id": f"doc-{len(docs):03d}", "kind": kind, "source": source, "expect": expect,
                             "text": text})
                return
            pool.insert(0, (source, base))
        raise RuntimeError(f"could not plant a {kind} document with expectation {expect}")

    cloze_text = [t for t in items["gutenberg_cloze"] if len(normalized_words(t)) >= N]
    short = [t for t in items["gutenberg_cloze"] if 8 <= len(normalized_words(t)) < N]
    tiny = [t for t in items["gutenberg_cloze"] if len(normalized_words(t)) < 8]
    long_items = {"gutenberg_cloze": cloze_text, "genesis_completion": items["genesis_completion"],
                  "eltec_qa": items["eltec_qa"]}
    for _ in range(10):
        add("clean", None, [])
    for name, its in long_items.items():
        picks = rng.sample(its, 11)
        for t in picks[:4]:
            add("verbatim", t, [name], paragraph=rng.random() < 0.5)
        for style, t in enumerate(picks[4:8]):
            add("case_punct", _case_punct(t, style), [name])
        for t in picks[8:11]:
            add("n_minus_1", _span_of_words(t, N - 1, rng), [], paragraph=False)
        w = normalized_words(rng.choice(its))
        add("spliced", " ".join(x for i, x in enumerate(w) if i % (N - 1) != N - 2), [])
    for t in rng.sample(items["eltec_qa"], 2):
        add("accents_stripped", _strip_accents(t), ["eltec_qa"])
    digit_items = [t for t in cloze_text if re.search(r"\d", t)]
    add("numbers_changed", re.sub(r"\d", lambda m: str((int(m.group()) + 3) % 10), digit_items[0]),
        ["gutenberg_cloze"])
    verse = next(v for v in picked if len(v.split()) >= 2 * N + 2)
    add("source_sentence", verse, ["genesis_completion"])
    for _ in range(2):
        add("two_benchmarks", rng.choice(cloze_text) + "\n\n" + rng.choice(items["eltec_qa"]),
            ["eltec_qa", "gutenberg_cloze"])
    for t in short:
        add("short_item", t, ["gutenberg_cloze"])
    for t in tiny:
        add("too_short_item", t, [])
    for _ in range(10):
        add("clean", None, [])
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
    kinds = Counter(d["kind"] for d in docs)
    print(f"wrote {out}: {len(cloze)} cloze, {len(rows)} completion, {len(qa)} QA items; "
          f"{len(docs)} documents {dict(kinds)}")


# --------------------------------------------------------------------------- datatrove side

def datatrove_index(eval_sets: dict[str, list[str]], folder: str, n: int = N) -> tuple[float, int]:
    """Hash the items with NGramsDecontIndexer.compute_hashes and write them as its run() does;
    returns (seconds, n-grams)."""
    from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontIndexer
    from datatrove.utils.hashing import create_hash_func
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    config = NGramsDecontConfig(n_grams=n)
    # The indexer's constructor insists on lighteval; compute_hashes needs only these three.
    step = SimpleNamespace(tokenizer=load_word_tokenizer("en"), config=config,
                           hash_func=create_hash_func(config.hash_config))
    step.tokenizer.word_tokenize("warm up spaCy")
    t0 = time.perf_counter()
    total = 0
    for task, items in eval_sets.items():
        hashes: set[int] = set()
        for item in items:
            hashes.update(NGramsDecontIndexer.compute_hashes(step, item, None))
        arr = np.array(list(hashes), dtype=config.hash_config.np_descr)
        with open(Path(folder) / f"{task.replace(' ', '_')}.index.hashes", "wb") as f:
            arr.tofile(f)
        total += len(hashes)
    return time.perf_counter() - t0, total


def datatrove_filter(folder: str, n: int = N) -> Any:
    from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontFilter

    return NGramsDecontFilter(index_folder=folder, config=NGramsDecontConfig(n_grams=n))


def interleaved(flt: Any, index: NGramIndex, texts: list[str]) -> dict[str, Any]:
    """Each document through datatrove's filter, winnow's filter mode and winnow's full match, in a
    random order per document, timed per document: load from other processes hits all three alike."""
    from datatrove.data import Document as DTDocument

    def run_dt(t: str) -> str | None:
        doc = DTDocument(text=t, id="")
        return None if flt.filter(doc) is True else doc.metadata["contaminated_task"]

    engines = [run_dt, lambda t: index.match(t, first=True), index.match]
    results: list[list[Any]] = [[], [], []]
    times = np.zeros((len(texts), 3))
    order = list(range(3))
    rng = random.Random(0)
    clock = time.perf_counter
    for i, t in enumerate(texts):
        rng.shuffle(order)  # whoever runs right after another engine finds the CPU caches cold
        for e in order:
            t0 = clock()
            results[e].append(engines[e](t))
            times[i, e] = clock() - t0
    dt_out, w_first, w_all = results
    return {"dt_out": dt_out, "w_first": w_first, "w_all": w_all, "times": times}


def measured(fn: Any) -> tuple[Any, float, int, int]:
    """(result, seconds, bytes still held after, peak bytes) of fn(), by tracemalloc."""
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    result = fn()
    dt = time.perf_counter() - t0
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, dt, current, peak


# --------------------------------------------------------------------------- runs

def documents(max_docs: int) -> tuple[list[str], list[dict[str, Any]]]:
    planted = [json.loads(line) for line in (TEST_DATA / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    data = shared_data()
    texts = [json.loads(line)["text"]
             for line in (data / "html" / "ground_truth.jsonl").read_text(encoding="utf-8").splitlines()]
    for path in sorted((data / "text" / "gutenberg").glob("*.txt.gz")):
        book = _unwrap(_read(path))
        texts += [book[i : i + 4400] for i in range(0, len(book) - 4400, 4400)]
    random.Random(0).shuffle(texts)
    return [d["text"] for d in planted] + texts[: max(max_docs - len(planted), 0)], planted


def compare(label: str, eval_sets: dict[str, list[str]], texts: list[str]) -> dict[str, Any]:
    """Build both indexes, run both filters over texts; timings, memory, agreement."""
    with tempfile.TemporaryDirectory() as tmp:
        index, w_build, w_held, w_peak = measured(lambda: NGramIndex.build(eval_sets, n=N))
        (dt_build, dt_ngrams), _, _, _ = measured(lambda: datatrove_index(eval_sets, tmp))
        flt = datatrove_filter(tmp)
        _, dt_load, dt_held, dt_peak = measured(flt.load_index_hashes)
        index.save(f"{tmp}/index.npz")
        _, w_load, _, _ = measured(lambda: NGramIndex.load(f"{tmp}/index.npz"))
        run = interleaved(flt, index, texts)
        strict = NGramIndex.build(eval_sets, n=N, min_words=N)  # datatrove's rule for short items
        s_all = [strict.match(t) for t in texts]
    dt_out, w_first, w_all, times = run["dt_out"], run["w_first"], run["w_all"], run["times"]
    clean = np.array([not a and d is None for a, d in zip(w_all, dt_out, strict=True)])
    flagged = [bool(x) for x in w_all]
    agree = sum(a == (b is not None) for a, b in zip(flagged, dt_out, strict=True)) / len(texts)
    agree_strict = sum(bool(a) == (b is not None) for a, b in zip(s_all, dt_out, strict=True)) / len(texts)
    return {
        "label": label, "index": index, "w_ngrams": index.n_grams, "dt_ngrams": dt_ngrams,
        "w_build": w_build, "dt_build": dt_build, "w_load": w_load, "dt_load": dt_load,
        "w_bytes_per_m": w_held / max(index.n_grams, 1) * 1e6, "w_peak_per_m": w_peak / max(index.n_grams, 1) * 1e6,
        "w_nbytes": index.nbytes,
        "dt_bytes_per_m": dt_held / max(dt_ngrams, 1) * 1e6, "dt_peak_per_m": dt_peak / max(dt_ngrams, 1) * 1e6,
        "dt_time": times[:, 0].sum(), "w_time_first": times[:, 1].sum(), "w_time_all": times[:, 2].sum(),
        "clean_docs": int(clean.sum()), "clean_times": times[clean].sum(axis=0),
        "flagged_w": sum(flagged), "flagged_w_strict": sum(map(bool, s_all)),
        "flagged_dt": sum(x is not None for x in dt_out), "agree": agree, "agree_strict": agree_strict,
        "w_first_same_as_all": sum(bool(a) == bool(b) for a, b in zip(w_first, w_all, strict=True)) / len(texts),
        "w_all": w_all, "s_all": s_all, "dt_out": dt_out, "texts": texts,
    }


def scale_items(max_ngrams: int | None) -> dict[str, list[str]]:
    """Paragraphs of 13+ words from all of ../shared/data/text, one benchmark per folder, in a
    seeded order, until about max_ngrams n-grams (None: all of them)."""
    data = shared_data() / "text"
    paras = []
    for folder in ("eltec", "gutenberg", "genesis"):
        for path in sorted((data / folder).glob("*.txt.gz")):
            paras += [(folder, p) for p in _paragraphs(_read(path)) if len(p.split()) >= N]
    random.Random(1).shuffle(paras)
    out: dict[str, list[str]] = {}
    total = 0
    for folder, p in paras:
        if max_ngrams is not None and total >= max_ngrams:
            break
        out.setdefault(f"scale_{folder}", []).append(p)
        total += len(p.split()) - N + 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-docs", type=int, default=2000)
    ap.add_argument("--scale", default="10000,100000,1000000,all",
                    help="eval n-gram counts for the scaling runs ('all' = every paragraph of shared text)")
    ap.add_argument("--make-test-data", action="store_true", help="regenerate tests/data/decontam and exit")
    args = ap.parse_args()
    if args.make_test_data:
        make_test_data()
        return
    pin_to_one_core()
    from winnow.filters.words import import_spacy_without_torch

    import_spacy_without_torch()  # datatrove's tokenizer is spaCy; keep torch out of the memory figures
    logger.disable("datatrove")  # one INFO line per loaded task file
    texts, planted = documents(args.max_docs)
    chars = sum(map(len, texts)) / len(texts)
    print(f"\n{len(texts)} documents ({len(planted)} planted-corpus + articles/book windows), "
          f"{chars:,.0f} characters on average ({machine()})")

    eval_sets = load_eval_sets([str(TEST_DATA / "gutenberg_cloze.jsonl"), str(TEST_DATA / "genesis_completion.parquet"),
                                str(TEST_DATA / "eltec_qa")])
    small = compare("test eval sets", eval_sets, texts)
    rows = [{"engine": "datatrove NGramsDecontFilter", "docs/s (1 core)": f"{len(texts) / small['dt_time']:.0f}",
             "ms/doc": f"{1000 * small['dt_time'] / len(texts):.2f}", "vs datatrove": "1.0x",
             "flagged": small["flagged_dt"]},
            {"engine": "winnow match(first=True) (filter)",
             "docs/s (1 core)": f"{len(texts) / small['w_time_first']:.0f}",
             "ms/doc": f"{1000 * small['w_time_first'] / len(texts):.2f}",
             "vs datatrove": f"{small['dt_time'] / small['w_time_first']:.1f}x", "flagged": small["flagged_w"]},
            {"engine": "winnow match() (all benchmarks)", "docs/s (1 core)": f"{len(texts) / small['w_time_all']:.0f}",
             "ms/doc": f"{1000 * small['w_time_all'] / len(texts):.2f}",
             "vs datatrove": f"{small['dt_time'] / small['w_time_all']:.1f}x", "flagged": small["flagged_w"]}]
    print(f"\n### Test eval sets ({', '.join(f'{k}: {len(v)} items' for k, v in eval_sets.items())}; "
          f"{small['w_ngrams']:,} winnow / {small['dt_ngrams']:,} datatrove n-grams)\n")
    print(markdown_table(rows))
    per_bench_w = Counter(b for m in small["w_all"] for b in m)
    per_bench_dt = Counter(x for x in small["dt_out"] if x)
    print(f"\nflagged per benchmark: winnow {dict(sorted(per_bench_w.items()))}; datatrove (first hit only) "
          f"{dict(sorted(per_bench_dt.items()))}")
    print(f"flag agreement with datatrove: {small['agree']:.4f} (winnow with min_words=13, datatrove's rule for "
          f"short items: {small['agree_strict']:.4f}); first=True flags the same documents as the full scan: "
          f"{small['w_first_same_as_all']:.4f}")
    expected = [d["expect"] for d in planted]
    right = sum(a == b for a, b in zip(small["w_all"][: len(planted)], expected, strict=True))
    print(f"planted corpus: winnow matches the expected benchmarks on {right}"
          f"/{len(planted)} documents; datatrove flags {sum(x is not None for x in small['dt_out'][:len(planted)])}"
          f" of the {sum(bool(e) for e in expected)} expected")
    explain_disagreements(small)

    scale_rows: list[dict[str, object]] = []
    for spec in args.scale.split(","):
        limit = None if spec == "all" else int(spec)
        items = scale_items(limit)
        r = compare(f"scale {spec}", items, texts[: min(len(texts), 1000)])
        docs, ct = len(r["texts"]), r["clean_times"]
        scale_rows.append({
            "eval n-grams (winnow / datatrove)": f"{r['w_ngrams']:,} / {r['dt_ngrams']:,}",
            "build s (w / dt)": f"{r['w_build']:.2f} / {r['dt_build']:.2f}",
            "load s (w / dt)": f"{r['w_load']:.2f} / {r['dt_load']:.2f}",
            "MB per M n-grams, held (w / dt)": f"{r['w_bytes_per_m'] / 1e6:.1f} / {r['dt_bytes_per_m'] / 1e6:.1f}",
            "build peak MB per M (w)": f"{r['w_peak_per_m'] / 1e6:.1f}",
            "docs/s all docs: w filter / w all / dt": f"{docs / r['w_time_first']:.0f} / "
                                                      f"{docs / r['w_time_all']:.0f} / {docs / r['dt_time']:.0f}",
            "vs dt (filter)": f"{r['dt_time'] / r['w_time_first']:.1f}x",
            "docs/s clean docs: w filter / dt": f"{r['clean_docs'] / ct[1]:.0f} / {r['clean_docs'] / ct[0]:.0f}",
            "vs dt (clean)": f"{ct[0] / ct[1]:.1f}x",
            "flagged w / dt": f"{r['flagged_w']} / {r['flagged_dt']}",
            "agreement": f"{r['agree']:.4f}",
        })
        del r
        gc.collect()
    print(f"\n### Scaling (items = paragraphs of shared text; {min(len(texts), 1000)} documents, of which the "
          "clean ones = flagged by neither)\n")
    print(markdown_table(scale_rows))
    print("\nheld = tracemalloc bytes still allocated after the build (winnow: NGramIndex; datatrove: the "
          "filter's loaded hash -> task dict), per million index n-grams.")


def explain_disagreements(r: dict[str, Any], limit: int = 5) -> None:
    """Why the two disagree, per document: short items, or words datatrove's spaCy splits differently."""
    reasons: Counter[str] = Counter()
    examples = []
    for i, (w, s, d) in enumerate(zip(r["w_all"], r["s_all"], r["dt_out"], strict=True)):
        if bool(w) == (d is not None):
            continue
        if bool(s) == (d is not None):
            reasons["whole short item (min_words <= words < 13)"] += 1
        else:
            reasons["tokenisation (winnow flags)" if w else "tokenisation (datatrove flags)"] += 1
            examples.append((i, w, d))
    if reasons:
        print("disagreements:", dict(reasons), "examples (doc, winnow, datatrove):", examples[:limit])


if __name__ == "__main__":
    main()
