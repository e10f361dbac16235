"""The classify stage on real text: fastText classifiers and taggers trained here on Gutenberg
books, and tiny random transformers models (a regression head and a 2-class head) built here;
nothing is downloaded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers.tiny_models import TEXT, build_transformers, train_fasttext, windows

from winnow.config import ConfigError
from winnow.document import Document
from winnow.filters.fasttext_classifier import FastTextClassifier, top_k_kept
from winnow.stage import StageEnv, StageError
from winnow.tasks.classify import ClassifyConfig, ClassifyStage
from winnow.tasks.pipeline import load_config

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared" / "data" / "text"


def held_out_docs(n: int = 30) -> list[Document]:
    """Windows of two books no model here was trained on, alternating."""
    austen = windows(TEXT / "austen-persuasion.txt.gz", n=n // 2)
    chesterton = windows(TEXT / "chesterton-thursday.txt.gz", n=n - n // 2)
    texts = [t for pair in zip(austen, chesterton) for t in pair]
    return [Document(id=f"d{i}", text=t) for i, t in enumerate(texts)]


@pytest.fixture(scope="module")
def author_model(tmp_path_factory) -> Path:
    """Austen vs Chesterton, trained on other books of theirs (the held-out books score)."""
    if not SHARED.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    g = SHARED / "gutenberg"
    return train_fasttext(tmp_path_factory.mktemp("ft"), "author", {
        "austen": windows(g / "austen-emma.txt.gz", 600, 300) + windows(g / "austen-sense.txt.gz", 600, 300),
        "chesterton": windows(g / "chesterton-ball.txt.gz", 600, 300) + windows(g / "chesterton-brown.txt.gz", 600, 300),
    })


@pytest.fixture(scope="module")
def genre_model(tmp_path_factory) -> Path:
    """A three-way tagger: bible, novel, poetry."""
    if not SHARED.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    g = SHARED / "gutenberg"
    return train_fasttext(tmp_path_factory.mktemp("ft"), "genre", {
        "bible": windows(SHARED / "genesis" / "en_kjv.txt.gz", 600) + windows(SHARED / "genesis" / "en_web.txt.gz", 600),
        "novel": windows(g / "austen-emma.txt.gz", 600, 150) + windows(g / "chesterton-ball.txt.gz", 600, 150),
        "poetry": windows(g / "milton-paradise.txt.gz", 600, 150) + windows(g / "whitman-leaves.txt.gz", 600, 150),
    })


@pytest.fixture(scope="module")
def edu_model(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    return build_transformers(tmp_path_factory.mktemp("edu"), num_labels=1)


@pytest.fixture(scope="module")
def binary_model(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    return build_transformers(tmp_path_factory.mktemp("bin"), num_labels=2, seed=1)


def section(*classifiers: dict) -> ClassifyConfig:
    return ClassifyConfig(enabled=True, classifiers=list(classifiers))


def manual_forward(model_path: Path, texts: list[str], max_chars: int, max_length: int) -> list[list[float]]:
    """The model run directly, one text at a time, on the text the stage gives it."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, local_files_only=True).eval()
    out = []
    with torch.inference_mode():
        for t in texts:
            enc = tok(t[:max_chars], truncation=True, max_length=max_length, return_tensors="pt")
            if enc["input_ids"].shape[1] == 0:  # no tokens: the scorer says 0
                out.append([0.0] * model.config.num_labels)
                continue
            out.append(model(**enc).logits[0].float().tolist())
    return out


def test_regression_scores_are_the_models_own_batched_or_not(edu_model, run_stage):
    from winnow.filters.transformers_scorer import TransformersScorer

    docs = held_out_docs(24)
    docs[3].text = docs[3].text[:40]  # short and long texts in one batch: padding must not change scores
    docs[5].text = ""
    spec = {"kind": "transformers", "name": "edu", "model_path": str(edu_model), "mode": "annotate",
            "batch_size": 5, "max_chars": 400, "max_length": 64}
    kept, stats = run_stage(ClassifyStage, section(spec), docs)
    assert len(kept) == 24 and stats.docs_out == 24
    expected = [row[0] for row in manual_forward(edu_model, [d.text for d in docs], 400, 64)]
    got = [d.annotations["classify.edu.score"] for d in kept]
    assert max(abs(a - b) for a, b in zip(got, expected)) < 1e-5
    assert len(set(got)) > 10  # the texts really differ in score
    # FineWeb-Edu's int_score: the score clipped to 0..5 and rounded.
    assert all(d.annotations["classify.edu.int_score"] == int(round(max(0, min(e, 5)))) for d, e in zip(kept, expected))
    texts = [d.text for d in docs]
    one = [s.score for s in TransformersScorer(str(edu_model), batch_size=1, max_chars=400, max_length=64).score(texts)]
    many = [s.score for s in TransformersScorer(str(edu_model), batch_size=16, max_chars=400, max_length=64).score(texts)]
    assert max(abs(a - b) for a, b in zip(one, many)) < 1e-5
    # A max_length past the model's position table (128) is held to it instead of failing every batch.
    assert TransformersScorer(str(edu_model), max_length=4096).max_length == 128


def test_classification_head_scores_the_chosen_class(binary_model, run_stage):
    import torch

    docs = held_out_docs(12)
    logits = manual_forward(binary_model, [d.text for d in docs], 10_000, 128)  # the position table
    probs = [torch.softmax(torch.tensor(row), -1).tolist() for row in logits]
    by_name = {"kind": "transformers", "name": "hi", "model_path": str(binary_model), "label": "high",
               "mode": "annotate"}
    by_index = {**by_name, "name": "one", "label": 1}
    top = {**by_name, "name": "top", "label": None}
    kept, stats = run_stage(ClassifyStage, section(by_name, by_index, top), docs)
    for d, p in zip(kept, probs):
        assert abs(d.annotations["classify.hi.score"] - p[1]) < 1e-5
        assert d.annotations["classify.one.score"] == d.annotations["classify.hi.score"]
        assert abs(d.annotations["classify.top.score"] - max(p)) < 1e-5
        assert d.annotations["classify.hi.label"] == ("high" if p[1] > p[0] else "low")
        assert "classify.hi.int_score" not in d.annotations  # a classification head has no int_score
    assert stats.counters["label:hi:high"] + stats.counters["label:hi:low"] == 12
    with pytest.raises(StageError, match="no class 'medium'"):
        ClassifyStage(section({**by_name, "label": "medium"}), StageEnv())


def test_fasttext_threshold_filter_and_funnel(author_model, run_stage):
    docs = held_out_docs(30)
    model = FastTextClassifier(str(author_model), "austen")
    scores = [model.predict(d.text).score for d in docs]
    spec = {"kind": "fasttext", "name": "austen", "model_path": str(author_model), "label": "__label__austen",
            "threshold": 0.5}
    kept, stats = run_stage(ClassifyStage, section(spec), docs)
    assert [d.id for d in kept] == [d.id for d, s in zip(docs, scores) if s >= 0.5]
    assert stats.dropped_docs == {"classify:austen": 30 - len(kept)}
    # The model learned the authors from other books: the held-out Austen windows (even ids) are kept.
    austen_kept = sum(int(d.id[1:]) % 2 == 0 for d in kept)
    assert austen_kept >= 12 and len(kept) - austen_kept <= 3, [d.id for d in kept]
    assert all(d.annotations["classify.austen.label"] in {"austen", "chesterton"} for d in kept)
    assert all(abs(d.annotations["classify.austen.score"] - s) < 1e-6 for d, s in zip(kept, [s for s in scores if s >= 0.5]))


def test_top_k_percent_keeps_the_best_of_the_shard_in_filter_or_annotate_mode(author_model, run_stage):
    docs = held_out_docs(30)
    model = FastTextClassifier(str(author_model), "chesterton")
    scores = [model.predict(d.text).score for d in docs]
    best = sorted(range(30), key=lambda i: -scores[i])[:9]  # 30% of 30
    spec = {"kind": "fasttext", "name": "gkc", "model_path": str(author_model), "label": "chesterton",
            "top_k_percent": 30}
    stage = ClassifyStage(section(spec), StageEnv())
    assert stage.batch_size is None  # the whole shard is ranked at once
    kept, stats = run_stage(ClassifyStage, section(spec), docs)
    assert sorted(d.id for d in kept) == sorted(f"d{i}" for i in best)
    assert stats.dropped_docs["classify:gkc"] == 21
    kept, stats = run_stage(ClassifyStage, section({**spec, "mode": "annotate"}), held_out_docs(30))
    assert len(kept) == 30 and stats.counters["would_drop:classify:gkc"] == 21 and not stats.dropped_docs
    assert sorted(d.id for d in kept if d.annotations["classify.gkc.keep"]) == sorted(f"d{i}" for i in best)
    assert top_k_kept([0.1, 0.9, 0.9, 0.5], 50) == {1, 2} and top_k_kept([1.0, 2.0], 10) == set()


def test_several_classifiers_in_order_each_with_its_funnel(author_model, genre_model, edu_model, run_stage):
    docs = held_out_docs(20)
    milton = windows(SHARED / "gutenberg" / "milton-paradise.txt.gz", 600)[400:404]  # past its training windows
    docs += [Document(id=f"p{i}", text=t) for i, t in enumerate(milton)]
    genre = {"kind": "fasttext", "name": "genre", "model_path": str(genre_model), "mode": "annotate"}
    author = {"kind": "fasttext", "name": "author", "model_path": str(author_model), "label": "austen",
              "threshold": 0.5}
    edu = {"kind": "transformers", "name": "edu", "model_path": str(edu_model), "top_k_percent": 50}
    kept, stats = run_stage(ClassifyStage, section(genre, author, edu), docs)
    assert all("classify.genre.label" in d.annotations for d in kept)
    assert stats.counters["label:genre:novel"] >= 16 and stats.counters["label:genre:poetry"] >= 2
    n_author = stats.dropped_docs["classify:author"]
    assert n_author >= 10  # Chesterton and Milton
    survivors = 24 - n_author
    assert stats.dropped_docs["classify:edu"] == survivors - round(survivors / 2)
    assert len(kept) == round(survivors / 2) and stats.docs_out == len(kept)
    assert all("classify.edu.score" in d.annotations for d in kept)


def test_only_documents_still_in_are_scored(author_model, edu_model, run_stage):
    docs = held_out_docs(10)
    author = {"kind": "fasttext", "name": "author", "model_path": str(author_model), "label": "austen",
              "threshold": 0.5}
    edu = {"kind": "transformers", "name": "edu", "model_path": str(edu_model), "mode": "annotate"}
    rejected: list[Document] = []
    cfg = ClassifyConfig(enabled=True, write_rejected=True, classifiers=[author, edu])
    kept, _ = run_stage(ClassifyStage, cfg, docs, lambda stage, doc, reason: rejected.append(doc))
    assert rejected and all("classify.edu.score" not in d.annotations for d in rejected)
    assert all(d.annotations["classify.reason"] == "classify:author" for d in rejected)
    assert all("classify.edu.score" in d.annotations for d in kept)


def test_settings_follow_the_model_and_output_settings_only(author_model, edu_model, tmp_path):
    import shutil

    ft = {"kind": "fasttext", "name": "a", "model_path": str(author_model), "label": "austen", "threshold": 0.5}
    tr = {"kind": "transformers", "name": "e", "model_path": str(edu_model), "threshold": 0.0}
    base = ClassifyStage.settings(section(ft, tr))
    assert ClassifyStage.settings(section(ft, {**tr, "batch_size": 3, "device": "cpu"})) == base
    assert ClassifyStage.settings(section({**ft, "threshold": 0.6}, tr)) != base
    assert ClassifyStage.settings(section(ft, {**tr, "dtype": "bfloat16"})) != base
    # A retrained fastText model at the same path, and a changed transformers folder, change the key.
    copy = tmp_path / "a.bin"
    shutil.copy(author_model, copy)
    before = ClassifyStage.settings(section({**ft, "model_path": str(copy)}))
    os.utime(copy, ns=(1, 1))
    assert ClassifyStage.settings(section({**ft, "model_path": str(copy)})) != before
    folder = tmp_path / "edu"
    shutil.copytree(edu_model, folder)
    before = ClassifyStage.settings(section({**tr, "model_path": str(folder)}))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["id2label"] = {"0": "edu"}
    (folder / "config.json").write_text(json.dumps(cfg))
    assert ClassifyStage.settings(section({**tr, "model_path": str(folder)})) != before


def test_bad_models_fail_before_work_in_one_line(author_model, edu_model, tmp_path):
    import transformers

    no_config = tmp_path / "empty"
    no_config.mkdir()
    encoder = tmp_path / "encoder"
    transformers.BertModel(transformers.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1,
                                                   num_attention_heads=2, intermediate_size=8)).save_pretrained(encoder)
    cases = [
        ({"kind": "fasttext", "name": "q", "model_path": str(tmp_path / "nope.bin"), "threshold": 0.5}, "not found"),
        ({"kind": "fasttext", "name": "q", "model_path": str(author_model), "label": "hq", "threshold": 0.5},
         "no label 'hq'"),
        ({"kind": "fasttext", "name": "q", "model_path": str(edu_model / "config.json"), "threshold": 0.5},
         "cannot load fastText model"),
        ({"kind": "transformers", "name": "e", "model_path": str(tmp_path / "nope"), "threshold": 1}, "not found"),
        ({"kind": "transformers", "name": "e", "model_path": str(no_config), "threshold": 1}, "no config.json"),
        ({"kind": "transformers", "name": "e", "model_path": str(encoder), "threshold": 1},
         "not a sequence-classification model"),
        ({"kind": "transformers", "name": "e", "model_path": str(edu_model), "label": 1, "threshold": 1},
         "regression head"),
    ]
    for spec, message in cases:
        with pytest.raises(StageError) as err:
            ClassifyStage.check(section(spec), StageEnv())
        line = str(err.value)
        assert message in line and "\n" not in line and line.startswith(f"classify.classifiers[0] ({spec['name']}):")


def test_config_rules_and_default_off(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("input: a\noutput: b\n")
    cfg = load_config(path)
    assert not ClassifyStage.is_enabled(cfg)  # existing runs: no new stage, no new done-marker key
    for body, message in [
        ("classify: {enabled: true}", "lists no classifiers"),
        ("classify: {enabled: true, classifiers: [{kind: fasttext, name: q, model_path: m}]}", "needs a threshold"),
        ("classify: {enabled: true, classifiers: [{kind: bert, name: q, model_path: m}]}", "kind"),
        ("classify: {enabled: true, classifiers: [{kind: fasttext, name: q, model_path: m, threshold: 0.5, "
         "top_k_percent: 10}]}", "not both"),
        ("classify: {enabled: true, classifiers: [{kind: fasttext, name: q, model_path: m, mode: annotate}, "
         "{kind: transformers, name: q, model_path: n, mode: annotate}]}", "unique"),
        ("classify: {enabled: true, classifiers: [{kind: fasttext, name: 'a.b', model_path: m, mode: annotate}]}",
         "pattern"),
    ]:
        path.write_text(f"input: a\noutput: b\n{body}\n")
        with pytest.raises(ConfigError, match=message):
            load_config(path)
    # `winnow stages` prints the section's fields: the item fields are in the list's description.
    described = ClassifyConfig.model_fields["classifiers"].description or ""
    assert all(f in described for f in ("model_path", "top_k_percent", "max_length", "int_score_range", "label"))
