"""fastText LID (winnow.filters.lid) on real pages: labels, bad input, model errors."""

from __future__ import annotations

import pytest

from winnow.filters.lid import FastTextLID, ModelError, bundled, load_thresholds


def test_lid_labels_real_pages(warc_docs):
    lid = FastTextLID()
    ja = warc_docs("clueweb09-ja-quirk.warc.gz")
    assert sum(lid.predict(d.text)[0] == "ja" for d in ja) >= 0.9 * len(ja)
    en = warc_docs("govuk-BL-20140325121225068-00000.warc.gz")
    assert sum(lid.predict(d.text)[0] == "en" for d in en) >= 0.9 * len(en)
    langs = {lid.predict(d.text)[0] for d in warc_docs("cc-main-2020-34-sample.warc.gz")}
    assert {"zh", "ru"} <= langs


def test_lid_bad_input():
    lid = FastTextLID()
    assert lid.predict("") == ("und", 0.0)
    assert lid.predict(" \n\t ") == ("und", 0.0)
    lang, score = lid.predict("𒀀𒀁𒀂 𒀃𒀄 ⵜⴰⵎⴰⵣⵉⵖⵜ 🙂🙂🙂")  # scripts the model never saw
    assert isinstance(lang, str) and 0.0 <= score <= 1.0
    giant = "The quick brown fox jumps over the lazy dog. " * 5_000_000  # 225 MB
    assert lid.predict(giant)[0] == "en"  # capped input: constant time


def test_lid_model_errors_are_clear(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        FastTextLID(tmp_path / "missing.bin")
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(b"\x00" * 1000)
    with pytest.raises(ModelError, match="cannot load"):
        FastTextLID(corrupt)


def test_bundled_files_load_and_a_missing_one_is_loud(tmp_path):
    assert bundled("lid.176.ftz").stat().st_size > 900_000
    table = load_thresholds()
    assert len(table) >= 60 and table["en"] == 0.95  # calibrated, never silently {}
    with pytest.raises(ModelError, match="missing from the winnow package"):
        bundled("no-such-model.bin")
    with pytest.raises(ModelError, match="not found"):
        load_thresholds(tmp_path / "none.json")
