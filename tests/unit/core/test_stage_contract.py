"""The stage contract: counting, timing and rejects in the base; the registry drives the lists."""

from __future__ import annotations

from winnow.document import Document
from winnow.stage import DocumentStage, DocumentStageConfig, StageEnv, by_kind, registered
from winnow.stats import StageStats


class ShortDocsConfig(DocumentStageConfig):
    min_words: int = 3


class ShortDocs(DocumentStage[ShortDocsConfig]):
    """A stage as a user writes one: only its decision (not registered: tests only)."""

    name = "short"
    config_model = ShortDocsConfig
    order = 50
    summary = "drops documents of fewer than min_words words"

    def apply(self, doc: Document) -> str | None:
        if len(doc.text.split()) < self.cfg.min_words:
            return "too_few_words"
        doc.text = doc.text.strip()
        doc.annotate(self.name, "words", len(doc.text.split()))
        return None


def test_base_counts_documents_bytes_reasons_and_rejects():
    docs = [Document(id="a", text="  one two three  "), Document(id="b", text="one two"), Document(id="c", text="x")]
    stats = StageStats()
    rejected: list[tuple[str, str, str]] = []
    kept = list(ShortDocs(ShortDocsConfig(write_rejected=True), StageEnv()).run(
        docs, stats, lambda stage, doc, reason: rejected.append((stage, doc.id, reason))))
    assert [d.id for d in kept] == ["a"] and kept[0].annotations == {"short.words": 3}
    assert stats.docs_in == 3 and stats.docs_out == 1
    assert stats.bytes_in == len("  one two three  ") + len("one two") + 1
    assert stats.bytes_out == len("one two three")  # measured after the stage rewrote the text
    assert stats.dropped_docs == {"too_few_words": 2} and stats.dropped_bytes["too_few_words"] == 8
    assert rejected == [("short", "b", "too_few_words"), ("short", "c", "too_few_words")]
    assert stats.seconds >= 0


def test_batch_stages_see_whole_batches():
    class Ranked(ShortDocs):
        batch_size = None  # the whole shard

        def apply_batch(self, docs):
            assert len(docs) == 4
            return [None if i % 2 == 0 else "odd" for i in range(len(docs))]

    stats = StageStats()
    kept = list(Ranked(ShortDocsConfig(), StageEnv()).run([Document(id=str(i), text="a b c") for i in range(4)], stats))
    assert [d.id for d in kept] == ["0", "2"] and stats.dropped_docs == {"odd": 2}


def test_registry_order_and_kinds():
    names = [s.name for s in registered()]
    assert names[:2] == ["ingest", "read"]
    assert [s.name for s in by_kind("corpus")] == ["dedup", "rephrase", "pack"]
    assert names.index("lid") < names.index("quality") < names.index("dedup")
    assert len(set(names)) == len(names) and all(s.summary for s in registered())
