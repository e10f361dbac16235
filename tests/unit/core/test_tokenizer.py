"""EOS/BOS of Hugging Face tokenizers are read the way transformers reads them
(tokenizer_config.json, special_tokens_map.json, then the tokenizer's own special tokens);
winnow fails only when none is found, and never takes a token of another model family. The
tokenizers are trained here (no downloads)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from winnow.tasks.pack import PackConfig, check_pack
from winnow.tokenizer import TokenizerError, load_tokenizer

TEXT = Path(__file__).resolve().parents[2] / "data" / "text"
LLAMA3 = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]


def train(folder: Path, special: list[str], template: str | None = None) -> Path:
    """A small byte-level BPE tokenizer.json with these special tokens (ids 0..n-1)."""
    text = gzip.open(TEXT / "austen-persuasion.txt.gz", "rt", encoding="utf-8").read()
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(text.split("\n\n")[:400], trainers.BpeTrainer(vocab_size=600, special_tokens=special))
    if template:
        # As Llama-3 ships it: byte-level, then a template that prepends BOS.
        tk.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=template, special_tokens=[(t, tk.token_to_id(t)) for t in special
                                                                           if t in template])])
    folder.mkdir(parents=True, exist_ok=True)
    tk.save(str(folder / "tokenizer.json"))
    return folder / "tokenizer.json"


def test_a_llama3_style_tokenizer_json_has_its_own_eos_and_bos(tmp_path):
    path = train(tmp_path / "llama3", LLAMA3, template="<|begin_of_text|> $A")
    tok = check_pack(PackConfig(tokenizer=str(path), add_bos=True))
    assert (tok.eos_token, tok.eos_id) == ("<|end_of_text|>", 1)
    assert (tok.bos_token, tok.bos_id) == ("<|begin_of_text|>", 0)  # the template's, before the text
    assert "special tokens of tokenizer.json" in tok.eos_from


@pytest.mark.parametrize("value", ["<|eot_id|>", {"__type": "AddedToken", "content": "<|eot_id|>",
                                                  "lstrip": False, "rstrip": False, "special": True}])
def test_tokenizer_config_names_the_eos_as_a_string_or_an_added_token(tmp_path, value):
    folder = tmp_path / "model"
    train(folder, LLAMA3)
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": value, "bos_token": None}))
    # A folder, as transformers takes it; tokenizer_config.json wins over the token names.
    tok = check_pack(PackConfig(tokenizer=str(folder)))
    assert (tok.eos_token, tok.eos_id, tok.eos_from) == ("<|eot_id|>", 2, str(folder / "tokenizer_config.json"))
    # The file path works the same: the configs beside it are read.
    assert load_tokenizer(str(folder / "tokenizer.json")).eos_id == 2


def test_special_tokens_map_then_explicit_setting(tmp_path):
    folder = tmp_path / "model"
    train(folder, ["<unk>", "<pad>", "<stop>"])
    (folder / "special_tokens_map.json").write_text(json.dumps({"eos_token": {"content": "<stop>"}}))
    assert load_tokenizer(str(folder)).eos_token == "<stop>"
    assert load_tokenizer(str(folder), eos_token="<pad>").eos_id == 1  # pack.eos_token wins
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<missing>"}))
    with pytest.raises(TokenizerError, match=r"EOS token '<missing>' \(from .*tokenizer_config.json\) is not in"):
        load_tokenizer(str(folder))


def test_no_eos_anywhere_fails_saying_where_it_looked_and_guesses_nothing(tmp_path):
    # <|endoftext|> is GPT-2's EOS; this vocabulary has the text but not as a special token.
    folder = tmp_path / "model"
    train(folder, ["<unk>", "<pad>"])
    with pytest.raises(TokenizerError) as info:
        check_pack(PackConfig(tokenizer=str(folder)))
    message = str(info.value)
    assert "has no EOS token" in message and "set pack.eos_token" in message
    assert "tokenizer_config.json and special_tokens_map.json in" in message and "<|end_of_text|>" in message
    assert check_pack(PackConfig(tokenizer=str(folder), add_eos=False)).eos_id is None


def test_the_eos_in_use_is_in_the_manifest_and_the_card(tmp_path):
    from winnow.document import Document
    from winnow.resume import ShardRef
    from winnow.shards import ShardWriter
    from winnow.tasks.pack import run_pack

    path = train(tmp_path / "llama3", LLAMA3)
    shard = str(tmp_path / "documents" / "part-00000.parquet")
    docs = [Document(id=f"d{k}", text=f"Anne Elliot walked {k} miles.") for k in range(5)]
    with ShardWriter(shard) as w:
        w.write_all(docs)
    manifest = run_pack([ShardRef(shard, "k", 5)], str(tmp_path / "packed"), PackConfig(tokenizer=str(path), seq_len=64))
    assert (manifest["eos_token"], manifest["eos_id"]) == ("<|end_of_text|>", 1)
    assert "special tokens of tokenizer.json" in manifest["eos_from"]
    on_disk = json.loads((tmp_path / "packed" / "__meta__" / "manifest.json").read_text())
    assert on_disk["eos_token"] == "<|end_of_text|>"
    assert "`<|end_of_text|>` = id 1" in (tmp_path / "packed" / "__meta__" / "README.md").read_text()
