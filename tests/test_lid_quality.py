"""Language ID and quality stages on real text: demo WARC pages and Gutenberg prose."""

from __future__ import annotations

import gzip
import random
import re

import pytest

from conftest import DEMO_WARCS, REPO
from filters.lid import FastTextLID, ModelError
from filters.quality_classifier import QualityClassifier, train
from filters.words import CachedSpacyTokenizer
from tasks.ingest import ingest_warc
from tasks.lid import check_lid, language_id
from tasks.quality import check_quality, quality
from winnow.config import ConfigError, IngestConfig, LidConfig, QualityConfig, load_config
from winnow.document import Document
from winnow.stats import StageStats

TEXT = REPO / "tests" / "data" / "text"


def warc_docs(name: str) -> list[Document]:
    return list(ingest_warc(str(DEMO_WARCS / name), IngestConfig(), StageStats()))


def prose_windows(name: str, size: int = 3000) -> list[str]:
    """Windows of a Gutenberg book, hard line wraps undone (as a web page's paragraphs are)."""
    text = gzip.open(TEXT / name, "rt", encoding="utf-8").read()
    text = re.sub(r"(?<!\n)\n(?!\n)", " ", text)
    return [text[i : i + size] for i in range(0, len(text) - size, size)]


def test_lid_labels_real_pages():
    lid = FastTextLID()
    ja = warc_docs("clueweb09-ja-quirk.warc.gz")
    assert sum(lid.predict(d.text)[0] == "ja" for d in ja) >= 0.9 * len(ja)
    en = warc_docs("govuk-BL-20140325121225068-00000.warc.gz")
    assert sum(lid.predict(d.text)[0] == "en" for d in en) >= 0.9 * len(en)
    langs = {lid.predict(d.text)[0] for d in warc_docs("cc-main-2020-34-sample.warc.gz")}
    assert {"zh", "ru"} <= langs


def test_lid_stage_keep_list_thresholds_and_annotations():
    docs = warc_docs("cc-main-2020-34-sample.warc.gz") + warc_docs("govuk-BL-20140325121225068-00000.warc.gz")
    stats = StageStats()
    kept = list(language_id([Document(id=d.id, text=d.text) for d in docs], LidConfig(keep=["en"], threshold=0.65), stats))
    assert kept and all(d.annotations["lid.lang"] == "en" and d.annotations["lid.score"] >= 0.65 for d in kept)
    assert stats.dropped_docs["lid_language"] > 0
    assert stats.docs_in == len(docs) == stats.docs_out + sum(stats.dropped_docs.values())
    # Per-language threshold above any score drops every English doc for low score.
    stats = StageStats()
    assert list(language_id(kept, LidConfig(keep=["en"], thresholds={"en": 1.0}), stats)) == []
    assert stats.dropped_docs == {"lid_low_score": len(kept)}


def test_lid_bad_input():
    lid = FastTextLID()
    assert lid.predict("") == ("und", 0.0)
    assert lid.predict(" \n\t ") == ("und", 0.0)
    lang, score = lid.predict("𒀀𒀁𒀂 𒀃𒀄 ⵜⴰⵎⴰⵣⵉⵖⵜ 🙂🙂🙂")  # scripts the model never saw
    assert isinstance(lang, str) and 0.0 <= score <= 1.0
    giant = "The quick brown fox jumps over the lazy dog. " * 5_000_000  # 225 MB
    assert lid.predict(giant)[0] == "en"  # capped input: constant time
    stats = StageStats()
    out = list(language_id([Document(id="e", text="   ")], LidConfig(), stats))
    assert out == [] and stats.dropped_docs == {"lid_no_text": 1}


def test_lid_model_errors_are_clear(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        FastTextLID(tmp_path / "missing.bin")
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(b"\x00" * 1000)
    with pytest.raises(ModelError, match="cannot load"):
        FastTextLID(corrupt)
    with pytest.raises(ValueError, match="does not know"):
        check_lid(LidConfig(keep=["english"]))


@pytest.mark.parametrize("yaml_text, expected", [
    ("input: a\noutput: b\nlid:\n  threshold: 1.5\n", "lid.threshold"),
    ("input: a\noutput: b\nlid:\n  thresholds: {en: -0.1}\n", "lid.thresholds.en"),
    ("input: a\noutput: b\nquality:\n  mode: drop\n", "quality.mode"),
    ("input: a\noutput: b\nquality:\n  classifier: {enabled: true}\n", "model_path is required"),
    ("input: a\noutput: b\nquality:\n  params: {gopher: {}}\n", "unknown rule set"),
])
def test_bad_stage_configs(tmp_path, yaml_text, expected):
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_bad_rule_parameter_fails_before_work():
    with pytest.raises(ValueError, match="quality.gopher_quality"):
        check_quality(QualityConfig(params={"gopher_quality": {"min_doc_wordz": 3}}))


def test_cached_tokenizer_equals_spacy():
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    spacy_tok = load_word_tokenizer("en")
    fast = CachedSpacyTokenizer("en")
    for text in prose_windows("chesterton-thursday.txt.gz")[:40] + [d.text for d in warc_docs("ukwa-IAH-urls-wget.warc.gz")]:
        assert fast.word_tokenize(text) == spacy_tok.word_tokenize(text)
        assert len(fast.span_tokenize(text)) == len(spacy_tok.span_tokenize(text))


def _repeat_heavy(text: str, rng: random.Random) -> str:
    words = text.split()
    k = rng.randrange(max(1, len(words) - 10))
    phrase = words[k:k + rng.randrange(1, 11)]
    return " ".join(words[:k] + phrase * rng.randrange(2, 30) + words[k:])


def test_fast_gopher_repetition_decides_exactly_as_datatrove():
    from datatrove.data import Document as DTDocument
    from datatrove.pipeline.filters import GopherRepetitionFilter
    from hypothesis import given, settings, strategies as st

    from filters.gopher_fast import FastGopherRepetitionFilter

    tok = CachedSpacyTokenizer("en")
    ref, fast = GopherRepetitionFilter(language=tok), FastGopherRepetitionFilter(language=tok)
    rng = random.Random(0)
    real = prose_windows("chesterton-thursday.txt.gz")[:60] + [d.text for d in warc_docs("ukwa-IAH-urls-wget.warc.gz")]
    texts = real + [_repeat_heavy(t, rng) for t in real]
    # Word splits whose "".join collide ("ab"+"c" == "a"+"bc"): the original compares strings.
    texts += ["ab c a bc " * n + real[0][:300] for n in (1, 3, 8, 40)]
    verdicts = []
    for t in texts:
        d = DTDocument(text=t, id="")
        verdicts.append(ref.filter(d))
        assert fast.filter(d) == verdicts[-1], t[:200]
    assert len({str(v) for v in verdicts}) >= 4  # the texts reach several different rules

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.sampled_from(["a", "b", "ab", "c", "bc", "the", "cat", ".", "\n", "\n\n", "x y"]),
                    min_size=1, max_size=80))
    def same(parts):
        d = DTDocument(text=" ".join(parts), id="")
        assert fast.filter(d) == ref.filter(d)

    same()


def test_quality_filter_and_annotate_modes():
    prose = [Document(id=f"p{i}", text=t) for i, t in enumerate(prose_windows("austen-persuasion.txt.gz")[:30])]
    words = " ".join(prose[0].text.split()).split()
    spam = [Document(id="rep", text="buy cheap watches now " * 200),
            Document(id="short", text="Home | About | Contact"),
            Document(id="empty", text=""),
            Document(id="salad", text=" ".join(random.Random(1).sample(words, len(words))).replace(".", ""))]
    stats = StageStats()
    kept = list(quality(prose + spam, QualityConfig(), stats))
    kept_ids = {d.id for d in kept}
    assert {"rep", "short", "empty"}.isdisjoint(kept_ids)
    assert len([d for d in kept if d.id.startswith("p")]) >= 25
    assert stats.dropped_docs["empty_text"] == 1
    assert any(r.startswith("gopher_repetition:") for r in stats.dropped_docs)
    assert stats.docs_in == stats.docs_out + sum(stats.dropped_docs.values())
    # annotate: nothing dropped (but empty text), failures recorded per document.
    stats = StageStats()
    annotated = {d.id: d for d in quality([Document(id=d.id, text=d.text) for d in prose + spam],
                                          QualityConfig(mode="annotate"), stats)}
    assert set(annotated) == {d.id for d in prose + spam} - {"empty"}
    assert annotated["rep"].annotations["quality.failed"]
    assert annotated["p1"].annotations["quality.failed"] == []
    assert sum(v for k, v in stats.counters.items() if k.startswith("would_drop:")) >= 2


def test_rejected_documents_are_written_with_reason(tmp_path):
    from tasks.shard import process_shard
    from winnow.config import WinnowConfig
    from winnow.shardio import read_documents

    cfg = WinnowConfig.model_validate({"input": [str(DEMO_WARCS)], "output": str(tmp_path),
                                       "quality": {"write_rejected": True}})
    out = tmp_path / "documents" / "part-00000.parquet"
    result = process_shard(str(DEMO_WARCS / "govuk-BL-20140325121225068-00000.warc.gz"), str(out), cfg)
    rejected = list(read_documents(str(tmp_path / "rejected" / "part-00000.parquet"), StageStats()))
    assert len(rejected) == sum(result["stats"]["quality"]["dropped_docs"].values()) > 0
    assert all(d.annotations["quality.reason"] for d in rejected)


def test_quality_classifier_trains_and_generalises(tmp_path):
    rng = random.Random(0)
    good = prose_windows("austen-persuasion.txt.gz", 1500) + prose_windows("chesterton-thursday.txt.gz", 1500)
    # Negatives: the same vocabulary with the syntax destroyed, and real navigation/boilerplate text.
    bad = []
    for t in good:
        w = t.split()
        rng.shuffle(w)
        bad.append(" ".join(w))
    report = train(good, bad, tmp_path / "q.bin", valid_fraction=0.2)
    assert report.valid_examples > 50
    assert report.precision > 0.9 and report.recall > 0.9
    clf = QualityClassifier(str(tmp_path / "q.bin"))
    assert clf.score(good[0]) > clf.score(bad[0])
    # stage: top-k percent keeps exactly that share of a shard
    docs = [Document(id=str(i), text=t) for i, t in enumerate(good[:20] + bad[:20])]
    stats = StageStats()
    cfg = QualityConfig(rules=[], classifier={"enabled": True, "model_path": str(tmp_path / "q.bin"), "top_k_percent": 50})
    kept = list(quality(docs, cfg, stats))
    assert len(kept) == 20 and sum(int(d.id) < 20 for d in kept) >= 18
    with pytest.raises(ModelError):
        QualityClassifier(str(REPO / "winnow" / "models" / "lid.176.ftz"))


def test_train_quality_cli(tmp_path):
    import json
    import subprocess
    import sys

    good = prose_windows("austen-persuasion.txt.gz", 1500)
    pos, neg = tmp_path / "pos.jsonl", tmp_path / "neg.jsonl.gz"
    pos.write_text("\n".join(json.dumps({"text": t}) for t in good) + "\n{broken\n")
    with gzip.open(neg, "wt") as fh:
        for t in good:
            w = t.split()
            random.Random(len(t)).shuffle(w)
            fh.write(json.dumps({"text": " ".join(w)}) + "\n")
    proc = subprocess.run([sys.executable, "-m", "winnow.cli", "train-quality", "-p", str(pos), "-n", str(neg),
                           "-o", str(tmp_path / "m.bin")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "precision" in proc.stderr and "bad_json_line" in proc.stderr and (tmp_path / "m.bin").exists()
