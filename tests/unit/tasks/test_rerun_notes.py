"""Every corpus stage says what a rerun redoes and why, in the line the curated shards print
("N shard(s) from an earlier run redone: settings changed: ..."): real stages, real files, a
real OpenAI-compatible server for rephrasing, run in this process (LocalMapper)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from helpers.openai_server import FakeLLM

from winnow.document import Document
from winnow.resume import ShardRef
from winnow.shards import ShardWriter
from winnow.stage import CorpusContext, LocalMapper
from winnow.tasks.dedup.config import DedupConfig
from winnow.tasks.dedup.stage import DedupStage
from winnow.tasks.pack import PackConfig, PackStage
from winnow.tasks.rephrase import RephraseConfig, RephraseStage

TEXT = Path(__file__).resolve().parents[2] / "data" / "text"


def shards(tmp_path: Path, n: int = 2, per: int = 12) -> list[ShardRef]:
    text = gzip.open(TEXT / "austen-persuasion.txt.gz", "rt", encoding="utf-8").read()
    paras = [p for p in re.split(r"\n\s*\n", re.sub(r"(?<!\n)\n(?!\n)", " ", text)) if len(p.split()) > 40]
    refs = []
    for k in range(n):
        path = str(tmp_path / "documents" / f"part-{k:05d}.parquet")
        with ShardWriter(path) as w:
            w.write_all(Document(id=f"s{k}d{i}", text=paras[k * per + i]) for i in range(per))
        refs.append(ShardRef(path, f"key-{k}", per))
    return refs


def run(stage, section, out: Path, inputs: list[ShardRef]) -> list[str]:
    notes: list[str] = []
    stage.run(section, CorpusContext(str(out), {}, LocalMapper(), log=notes.append), inputs)
    return notes


def redone(notes: list[str], stage: str) -> list[str]:
    return [n for n in notes if n.startswith(f"{stage}: ") and "from an earlier run redone" in n]


def test_pack_dedup_and_rephrase_say_which_setting_made_them_redo(tmp_path):
    inputs = shards(tmp_path)
    out = tmp_path / "out"

    first = run(PackStage, PackConfig(enabled=True, seq_len=2048), out, inputs)
    assert not redone(first, "pack")
    # The EOS it appends, by name and id, is a line of the run's output.
    assert "pack: EOS '<|endoftext|>' = id 100257 (from the encoding's end-of-text token)" in " ".join(first)
    assert not redone(run(PackStage, PackConfig(enabled=True, seq_len=2048), out, inputs), "pack")  # done: silent
    notes = redone(run(PackStage, PackConfig(enabled=True, seq_len=1024), out, inputs), "pack")
    assert notes == ["pack: 1 output(s) from an earlier run redone: settings changed: pack.seq_len 2048 -> 1024"]
    # Other input (an upstream shard redone): said as such.
    other = [ShardRef(inputs[0].path, "key-0-redone", inputs[0].rows), inputs[1]]
    assert redone(run(PackStage, PackConfig(enabled=True, seq_len=1024), out, other), "pack") == [
        "pack: 1 output(s) from an earlier run redone: input changed"]

    assert not redone(run(DedupStage, DedupConfig(enabled=True), out, inputs), "dedup")
    notes = redone(run(DedupStage, DedupConfig(enabled=True, bands=10), out, inputs), "dedup")
    assert len(notes) == 1 and "settings changed: dedup.bands 14 -> 10" in notes[0], notes

    with FakeLLM() as llm:
        section = RephraseConfig(enabled=True, base_url=llm.base_url, model="fake", synthetic_per_real=0.5)
        assert not redone(run(RephraseStage, section, out, inputs), "rephrase")
        notes = redone(run(RephraseStage, section.model_copy(update={"temperature": 0.2}), out, inputs), "rephrase")
    assert notes == ["rephrase: 2 shard(s) from an earlier run redone: settings changed: "
                     "rephrase.temperature 0.7 -> 0.2"], notes
