"""Benchmark decontamination (filters/decontam.py) on the eval-style sets and the planted corpus of
tests/data/decontam (public-domain text; see its README)."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datatrove.utils.text import simplify_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from winnow.filters.decontam import (
    DecontamError,
    EvalSetError,
    IndexFileError,
    NGramIndex,
    load_eval_sets,
    normalized_words,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "decontam"
SOURCES = [str(DATA / "gutenberg_cloze.jsonl"), str(DATA / "genesis_completion.parquet"), str(DATA / "eltec_qa")]
CORPUS = [json.loads(line) for line in (DATA / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
CLEAN = [d["text"] for d in CORPUS if d["kind"] == "clean"]


@pytest.fixture(scope="module")
def eval_sets() -> dict[str, list[str]]:
    return load_eval_sets(SOURCES)


@pytest.fixture(scope="module")
def index(eval_sets: dict[str, list[str]]) -> NGramIndex:
    return NGramIndex.build(eval_sets)


def brute_force(doc: str, eval_sets: dict[str, list[str]], n: int = 13, min_words: int = 8) -> list[str]:
    """Word tuples compared directly, no hashing."""
    words = normalized_words(doc)
    out = set()
    for name, items in eval_sets.items():
        for item in items:
            iw = normalized_words(item)
            k = min(n, len(iw))
            if k < min_words:
                continue
            doc_grams = {tuple(words[i : i + k]) for i in range(len(words) - k + 1)}
            if any(tuple(iw[i : i + k]) in doc_grams for i in range(len(iw) - k + 1)):
                out.add(name)
    return sorted(out)


# --------------------------------------------------------------------------- eval sets


def test_eval_sets_load_with_auto_detected_fields(eval_sets: dict[str, list[str]]) -> None:
    assert {k: len(v) for k, v in eval_sets.items()} == {"gutenberg_cloze": 41, "genesis_completion": 30,
                                                         "eltec_qa": 20}
    cloze = json.loads((DATA / "gutenberg_cloze.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert eval_sets["gutenberg_cloze"][0] == f"{cloze['question']}\n{cloze['answer']}"
    row = pq.read_table(DATA / "genesis_completion.parquet").to_pylist()[0]
    assert eval_sets["genesis_completion"][0] == "\n".join([row["ctx"], *row["endings"]])  # label (int) is not text
    qa = json.loads((DATA / "eltec_qa" / "test-00000-of-00002.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert eval_sets["eltec_qa"][0] == "\n".join([qa["passage"], qa["query"], *qa["answers"]["text"]])


def test_glob_names_each_file_and_benchmark_column_overrides(tmp_path: Path) -> None:
    rows = [{"benchmark": "mmlu_like" if i % 2 else "arc_like", "question": CLEAN[i][:300], "choices":
             {"text": ["a b", "c d"], "label": ["A", "B"]}} for i in range(6)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "mixed.parquet")
    with gzip.open(tmp_path / "plain.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"prompt": CLEAN[0][:200], "target": 42}) + "\n\n")
    got = load_eval_sets([str(tmp_path / "*")])
    assert sorted(got) == ["arc_like", "mmlu_like", "plain"]
    assert got["arc_like"][0] == CLEAN[0][:300] + "\na b\nc d"
    assert got["plain"] == [CLEAN[0][:200] + "\n42"]


def test_eval_sets_from_an_fsspec_url() -> None:
    fs = fsspec.filesystem("memory")
    with fs.open("/dc-evals/cloze.jsonl.gz", "wb") as f:
        f.write(gzip.compress((DATA / "gutenberg_cloze.jsonl").read_bytes()))
    for shard in (DATA / "eltec_qa").iterdir():
        fs.pipe(f"/dc-evals/qa/{shard.name}", shard.read_bytes())
    try:
        got = load_eval_sets(["memory://dc-evals/cloze.jsonl.gz", "memory://dc-evals/qa"])
        ref = load_eval_sets(SOURCES)
        assert got == {"cloze": ref["gutenberg_cloze"], "qa": ref["eltec_qa"]}
    finally:
        fs.rm("/dc-evals", recursive=True)


def test_fields_override(tmp_path: Path) -> None:
    got = load_eval_sets([str(DATA / "gutenberg_cloze.jsonl")], fields=["answer"])
    assert got["gutenberg_cloze"][0] == "America"
    with pytest.raises(EvalSetError, match=r"gutenberg_cloze\.jsonl: field\(s\) endings not found; columns: id, "
                                           r"question, answer"):
        load_eval_sets([str(DATA / "gutenberg_cloze.jsonl")], fields=["answer", "endings"])


def test_clear_errors_for_bad_eval_files(tmp_path: Path) -> None:
    with pytest.raises(EvalSetError, match=r"missing\.jsonl: no such evaluation file"):
        load_eval_sets([str(tmp_path / "missing.jsonl")])
    (tmp_path / "items.csv").write_text("question,answer\nq,a\n")
    with pytest.raises(EvalSetError, match=r"items\.csv: unsupported evaluation-set format"):
        load_eval_sets([str(tmp_path / "items.csv")])
    (tmp_path / "ids.jsonl").write_text('{"id": 1, "score": 0.5}\n')
    with pytest.raises(EvalSetError, match=r"ids\.jsonl: no question/answer text fields found .*columns: id, score"):
        load_eval_sets([str(tmp_path / "ids.jsonl")])
    (tmp_path / "broken.jsonl").write_text('{"question": "fine"}\n{"question": "cut off\n')
    with pytest.raises(EvalSetError, match=r"broken\.jsonl:2: not valid JSON"):
        load_eval_sets([str(tmp_path / "broken.jsonl")])
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(EvalSetError, match=r"bad\.parquet: cannot read evaluation file"):
        load_eval_sets([str(tmp_path / "bad.parquet")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvalSetError, match=r"no \.jsonl or \.parquet evaluation files"):
        load_eval_sets([str(tmp_path / "empty")])
    assert issubclass(EvalSetError, ValueError) and issubclass(IndexFileError, DecontamError)


# --------------------------------------------------------------------------- normalisation


def test_normalisation_is_datatrove_simplify_text_without_leftover_punctuation() -> None:
    """datatrove's simplify_text, then every non-alphanumeric character as a break: identical words
    on every real document of the corpus (English, French, German, Spanish, Italian, Portuguese)."""
    for doc in CORPUS:
        assert normalized_words(doc["text"]) == re.findall(r"[^\W_]+", simplify_text(doc["text"]))


def test_case_punctuation_accents_numbers_are_ignored() -> None:
    sentence = "Call me Ishmael. Some years ago--never mind how long precisely--having little or no money"
    base = normalized_words(sentence)
    assert base[:4] == ["call", "me", "ishmael", "some"]
    for variant in (sentence.upper(), sentence.replace("--", " — "), "“" + sentence.replace(".", "!") + "”",
                    re.sub(r"\s+", "\n\n", sentence), sentence.replace(" ", "  \t")):
        assert normalized_words(variant) == base
    assert normalized_words("Aéroville, élevé à Noël") == normalized_words("AEROVILLE ELEVE A NOEL")
    assert normalized_words("in 1492, L150 and 3.14") == ["in", "0", "l0", "and", "0"]
    assert normalized_words("the whale_ship's \u2018log\u2019 \u00ae") == ["the", "whale", "ship", "s", "log"]


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet=st.characters(exclude_categories=("Cn", "Cs")), max_size=120))
def test_words_are_datatrove_simplify_text_split_at_non_alphanumerics(text: str) -> None:
    """Any text of assigned characters (the `regex` module datatrove uses knows digits newer than
    Python 3.11's Unicode 14 tables, e.g. U+16130; those differ)."""
    assert normalized_words(text) == re.findall(r"[^\W_]+", simplify_text(text))


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.characters(max_codepoint=127), max_size=200))
def test_ascii_fast_path_equals_unicode_path(text: str) -> None:
    """ASCII text takes a bytes.translate path; a trailing non-ASCII word sends the same text
    through the regex path, which must give the same words."""
    assert normalized_words(text + " \u00e9") == [*normalized_words(text), "e"]


# --------------------------------------------------------------------------- matching


def test_planted_corpus_per_benchmark(index: NGramIndex) -> None:
    got = {d["id"]: index.match(d["text"]) for d in CORPUS}
    assert all(got[d["id"]] == d["expect"] for d in CORPUS), [(d["id"], d["kind"]) for d in CORPUS
                                                              if got[d["id"]] != d["expect"]]
    counts = Counter(b for m in got.values() for b in m)
    assert counts == {"gutenberg_cloze": 14, "eltec_qa": 12, "genesis_completion": 9}
    by_kind = Counter(d["kind"] for d in CORPUS if got[d["id"]])
    assert by_kind == {"verbatim": 12, "case_punct": 12, "accents_stripped": 2, "numbers_changed": 1,
                       "source_sentence": 1, "two_benchmarks": 2, "short_item": 3}
    # near misses: 12 words of an item, an item with every 12th word dropped, a 6-word item
    misses = Counter(d["kind"] for d in CORPUS if not got[d["id"]])
    assert misses == {"clean": 20, "n_minus_1": 9, "spliced": 3, "too_short_item": 2}


def test_filter_mode_and_counts(index: NGramIndex) -> None:
    for doc in CORPUS:
        full = index.match(doc["text"])
        first = index.match(doc["text"], first=True)
        assert bool(first) == bool(full) and set(first) <= set(full)
        counts = index.match_counts(doc["text"])
        assert sorted(counts) == full
        hit = index.first_match(doc["text"])
        if not full:
            assert hit is None
            continue
        assert hit is not None and set(hit.benchmarks) <= set(full)
        words = normalized_words(doc["text"])
        assert " ".join(words[hit.word_offset : hit.word_offset + len(hit.ngram.split())]) == hit.ngram
    verbatim = next(d for d in CORPUS if d["kind"] == "verbatim" and d["expect"] == ["genesis_completion"])
    item_words = len(normalized_words(next(t for t in load_eval_sets(SOURCES)["genesis_completion"]
                                           if t in verbatim["text"])))
    assert index.match_counts(verbatim["text"]) == {"genesis_completion": item_words - 12}


def test_configurable_n_and_min_words(eval_sets: dict[str, list[str]]) -> None:
    n8 = NGramIndex.build(eval_sets, n=8)
    n_minus_1 = [d for d in CORPUS if d["kind"] == "n_minus_1"]
    assert all(n8.match(d["text"]) == brute_force(d["text"], eval_sets, n=8) for d in CORPUS)
    assert sum(bool(n8.match(d["text"])) for d in n_minus_1) == 9  # 12 shared words >= 8
    n30 = NGramIndex.build(eval_sets, n=30, min_words=30)
    assert n30.n == 30 and n30.n_grams < n8.n_grams
    assert all(n30.match(d["text"]) == brute_force(d["text"], eval_sets, n=30, min_words=30) for d in CORPUS)
    strict = NGramIndex.build(eval_sets, min_words=13)  # datatrove's behaviour: short items not indexed
    assert strict.lengths == (13,) and strict.stats["gutenberg_cloze"].too_short == 5
    assert not any(strict.match(d["text"]) for d in CORPUS if d["kind"] == "short_item")
    with pytest.raises(ValueError, match="n must be"):
        NGramIndex.build(eval_sets, n=0)
    with pytest.raises(ValueError, match="min_words"):
        NGramIndex.build(eval_sets, n=5, min_words=8)


def test_item_shared_by_benchmarks(eval_sets: dict[str, list[str]]) -> None:
    """An n-gram in several benchmarks is reported (and counted) for each of them."""
    item, other = eval_sets["genesis_completion"][:2]
    idx = NGramIndex.build({"a": [item], "b": [other, item], "c": [item], "d": [other]})
    doc = CLEAN[0] + "\n\n" + item
    assert idx.match(doc) == ["a", "b", "c"]
    windows = len(normalized_words(item)) - 12
    assert idx.match_counts(doc) == {"a": windows, "b": windows, "c": windows}
    hit = idx.first_match(doc)
    assert hit is not None and hit.benchmarks == ("a", "b", "c")
    assert idx.match(doc + " " + other) == ["a", "b", "c", "d"]


def test_index_properties(index: NGramIndex) -> None:
    assert index.benchmarks == ("eltec_qa", "genesis_completion", "gutenberg_cloze")
    assert index.n_grams == sum(s.n_grams for s in index.stats.values()) == 4122
    assert index.stats["gutenberg_cloze"].short_items == 3 and index.stats["gutenberg_cloze"].too_short == 2
    assert index.lengths[0] == 13 and all(8 <= k < 13 for k in index.lengths[1:])
    assert index.keys.dtype == np.uint64 and index.bench_ids.dtype == np.uint16
    assert 10 * index.n_grams < index.nbytes < 10 * index.n_grams + 200 * len(index.vocab) + 10_000
    empty = NGramIndex.build({})
    assert empty.n_grams == 0 and empty.match(CLEAN[0]) == [] and empty.first_match(CLEAN[0]) is None


def test_documents_longer_than_one_block(eval_sets: dict[str, list[str]], index: NGramIndex) -> None:
    """Items at and across the 16,384-word blocks a document is hashed in are found, and each
    window is counted once."""
    filler = normalized_words(" ".join(CLEAN)) * 20
    item = eval_sets["genesis_completion"][0]
    short = next(t for t in eval_sets["gutenberg_cloze"] if 8 <= len(normalized_words(t)) < 13)
    block = 16_384
    for at in (block - 40, block - 13, block - 12, block - 1, block, block + 1, block + 2, 2 * block - 5):
        prefix = " ".join(filler[:at])
        for text, name in ((item, "genesis_completion"), (short, "gutenberg_cloze")):
            doc = prefix + " " + text + " " + " ".join(filler[:2000])
            assert index.match(doc) == [name]
            assert index.match(doc, first=True) == [name]
            assert index.match_counts(doc) == {name: max(len(normalized_words(text)) - 12, 1)}, at
            hit = index.first_match(doc)
            assert hit is not None and hit.word_offset == at


def test_save_load_round_trip(tmp_path: Path, index: NGramIndex) -> None:
    for path in (str(tmp_path / "sub" / "decontam.npz"), "memory://decontam-test/index.npz"):
        index.save(path)
        loaded = NGramIndex.load(path)
        assert loaded.benchmarks == index.benchmarks and loaded.lengths == index.lengths
        assert loaded.n == 13 and loaded.min_words == 8 and loaded.stats == index.stats
        assert np.array_equal(loaded.keys, index.keys) and np.array_equal(loaded.bench_ids, index.bench_ids)
        assert loaded.vocab == index.vocab
        assert [loaded.match(d["text"]) for d in CORPUS] == [d["expect"] for d in CORPUS]
    assert not [p for p in (tmp_path / "sub").iterdir() if p.name.startswith(".")]  # no temp file left
    fsspec.filesystem("memory").rm("/decontam-test", recursive=True)


def test_bad_index_files(tmp_path: Path, index: NGramIndex) -> None:
    with pytest.raises(IndexFileError, match=r"nope\.npz: cannot read n-gram index"):
        NGramIndex.load(str(tmp_path / "nope.npz"))
    index.save(str(tmp_path / "ok.npz"))
    data = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexFileError, match=r"cut\.npz: not a readable n-gram index"):
        NGramIndex.load(str(tmp_path / "cut.npz"))
    np.savez(tmp_path / "other.npz", meta=np.frombuffer(b'{"format": "x"}', dtype=np.uint8))
    with pytest.raises(IndexFileError, match=r"other\.npz: not a winnow-ngram-index/1 file"):
        NGramIndex.load(str(tmp_path / "other.npz"))


def test_folder_input_is_one_benchmark(tmp_path: Path) -> None:
    shutil.copytree(DATA / "eltec_qa", tmp_path / "my_bench")
    (tmp_path / "my_bench" / "README.md").write_text("not data")
    (tmp_path / "my_bench" / "_SUCCESS").write_text("")
    got = load_eval_sets([str(tmp_path / "my_bench")])
    assert list(got) == ["my_bench"] and len(got["my_bench"]) == 20


# --------------------------------------------------------------------------- properties

_EVAL = load_eval_sets(SOURCES)
_LONG = [(name, t) for name, items in _EVAL.items() for t in items if len(normalized_words(t)) >= 13]
_INDEX = NGramIndex.build(_EVAL)
_TRANSFORMS = [str, str.upper, str.lower, str.title, lambda s: re.sub(r"\s+", "\n", s),
               lambda s: re.sub(r"([,.;:!?])", r" \1 ", s), lambda s: f"«{s}»"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item=st.sampled_from(_LONG), doc=st.sampled_from(CLEAN), where=st.floats(0, 1),
       transform=st.sampled_from(_TRANSFORMS))
def test_any_full_item_in_any_document_is_flagged(item: tuple[str, str], doc: str, where: float,
                                                  transform: object) -> None:
    name, text = item
    words = doc.split(" ")
    at = int(where * len(words))
    planted = " ".join([*words[:at], transform(text), *words[at:]])  # type: ignore[operator]
    assert name in _INDEX.match(planted)
    assert _INDEX.match(planted, first=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(st.tuples(st.sampled_from(_LONG + [("", t) for t in CLEAN]), st.integers(0, 400),
                                 st.integers(1, 40)), min_size=1, max_size=6))
def test_matches_brute_force_on_spliced_documents(pieces: list[tuple[tuple[str, str], int, int]]) -> None:
    """Documents glued from word runs of items and clean text: the index agrees with comparing
    word tuples directly (hash collisions or window bookkeeping would show here)."""
    parts = []
    for (_, text), start, length in pieces:
        words = text.split()
        start = start % len(words)
        parts.append(" ".join(words[start : start + length]))
    doc = " ".join(parts)
    assert _INDEX.match(doc) == brute_force(doc, _EVAL)
