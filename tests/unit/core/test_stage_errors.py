"""DocumentStage.run: a document for which a stage raises is counted and dropped, the shard goes
on, and the log line carries no document text. Real stages (fastText LID, the quality rules)
on a real lone surrogate, which JSON allows (`{"text": "x\\ud800y"}`) and both stages choke on."""

from __future__ import annotations

import logging
from typing import ClassVar

from winnow.document import Document
from winnow.stage import DocumentStage, DocumentStageConfig, StageEnv
from winnow.stats import StageStats
from winnow.tasks.lid import LidConfig, LidStage
from winnow.tasks.quality import QualityConfig, QualityStage

SECRET = "PLANTED-SECRET-TEXT"


def _docs(warc_docs) -> list[Document]:
    docs = [Document(id=d.id, text=d.text, url=d.url) for d in warc_docs("cc-main-2020-34-sample.warc.gz")]
    bad = Document(id="bad-1", text=f"{SECRET} x\ud800y " * 20, url="http://bad.invalid/")
    return docs[:8] + [bad] + docs[8:]


def _plain(d: Document) -> tuple:
    return d.id, d.text, d.annotations


def test_lid_and_quality_errors_drop_one_document_and_the_shard_goes_on(warc_docs, caplog):
    caplog.set_level(logging.WARNING, logger="winnow")
    for stage_cls, section, error in ((LidStage, LidConfig(), "error:TypeError"),
                                      (QualityStage, QualityConfig(), "error:UnicodeEncodeError")):
        docs = _docs(warc_docs)
        good = [Document(id=d.id, text=d.text, url=d.url) for d in docs if d.id != "bad-1"]
        rejected: list[tuple[str, str, str]] = []
        stats = StageStats()
        kept = list(stage_cls(section, StageEnv()).run(docs, stats, lambda s, d, r: rejected.append((s, d.id, r))))
        want_stats = StageStats()
        want = list(stage_cls(section, StageEnv()).run(good, want_stats))
        assert [_plain(d) for d in kept] == [_plain(d) for d in want]
        assert stats.dropped_docs[error] == 1
        assert stats.dropped_docs - want_stats.dropped_docs == {error: 1}
        assert stats.docs_in == stats.docs_out + sum(stats.dropped_docs.values()) == 17
        assert rejected == []  # write_rejected is off
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "bad-1" in logged and "TypeError" in logged and "UnicodeEncodeError" in logged
    assert SECRET not in logged and "\ud800" not in logged


def test_a_failing_document_goes_to_rejected_when_the_stage_writes_rejects(warc_docs):
    rejected: list[tuple[str, str, str]] = []
    kept = list(LidStage(LidConfig(write_rejected=True), StageEnv()).run(
        _docs(warc_docs), StageStats(), lambda s, d, r: rejected.append((s, d.id, r))))
    assert ("lid", "bad-1", "error:TypeError") in rejected
    assert "bad-1" not in {d.id for d in kept}


class _Ranking(DocumentStage[DocumentStageConfig]):
    """Keeps the longer half of its batch (as a top-k% classifier does); encodes every text."""
    name: ClassVar[str] = "ranking_for_test"
    batch_size = None

    def apply_batch(self, docs: list[Document]) -> list[str | None]:
        sizes = [len(d.text.encode("utf-8")) for d in docs]
        for d in docs:
            d.annotate(self.name, "seen", d.annotations.get(f"{self.name}.seen", 0) + 1)
        cut = sorted(sizes, reverse=True)[: (len(sizes) + 1) // 2][-1]
        return [None if s >= cut else "short" for s in sizes]


def test_a_batch_that_raises_is_decided_again_without_its_bad_documents(warc_docs):
    docs = _docs(warc_docs)
    good = [Document(id=d.id, text=d.text, url=d.url) for d in docs if d.id != "bad-1"]
    stats = StageStats()
    kept = list(_Ranking(DocumentStageConfig(), StageEnv()).run(docs, stats))
    want = list(_Ranking(DocumentStageConfig(), StageEnv()).run(good, StageStats()))
    # The same ranking as over the good documents alone, annotated once (not once per try).
    assert [_plain(d) for d in kept] == [_plain(d) for d in want]
    assert all(d.annotations["ranking_for_test.seen"] == 1 for d in kept)
    assert stats.dropped_docs["error:UnicodeEncodeError"] == 1
