"""Per-language quality settings (FineWeb-2 configs bundled in winnow/filters/data/fineweb2)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import yaml
from datatrove.pipeline.filters.gopher_quality_filter import STOP_WORDS

from winnow.filters import multilingual as ml
from winnow.filters import word_tokenizers as wt
from winnow.filters.quality import DEFAULT_PARAMS, RULESETS, apply_rules, build_rulesets
from winnow.filters.words import CachedSpacyTokenizer

DATA = Path(ml.__file__).parent / "data" / "fineweb2"
PAGES = Path(__file__).resolve().parents[2] / "data" / "multilingual" / "pages.jsonl"
STOP_RULE = "gopher_quality:gopher_enough_stop_words"
ONLY_STOP_WORDS = {"min_doc_words": None, "max_doc_words": None, "min_avg_word_length": None,
                   "max_avg_word_length": None, "max_symbol_word_ratio": None, "max_bullet_lines_ratio": None,
                   "max_ellipsis_lines_ratio": None, "max_non_alpha_words_ratio": None}
# lid.176's labels (winnow/models/lid.176.ftz), for the "never English stop words" sweep.
LID176 = ("af als am an ar arz as ast av az azb ba bar bcl be bg bh bn bo bpy br bs bxr ca cbk ce ceb ckb co cs "
          "cv cy da de diq dsb dty dv el eml en eo es et eu fa fi fr frr fy ga gd gl gn gom gu gv he hi hif hr "
          "hsb ht hu hy ia id ie ilo io is it ja jbo jv ka kk km kn ko krc ku kv kw ky la lb lez li lmo lo lrc "
          "lt lv mai mg mhr min mk ml mn mr mrj ms mt mwl my myv mzn nah nap nds ne new nl nn no oc or os pa pam "
          "pfl pl pms pnb ps pt qu rm ro ru rue sa sah sc scn sco sd sh si sk sl so sq sr su sv sw ta te tg th "
          "tk tl tr tt tyv ug uk ur uz vec vep vi vls vo wa war wuu xal xmf yi yo yue zh").split()


def _dev_rows(shared: Path) -> list[dict]:
    with open(shared / "lid" / "dev.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _pages() -> list[dict]:
    with open(PAGES, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _file(name: str) -> dict:
    with open(DATA / f"{name}.yml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def english_rules() -> list:
    """Today's quality stage: all four rule sets, English stop words, spaCy "en" words."""
    return build_rulesets(list(RULESETS), {}, CachedSpacyTokenizer("en"))


def test_at_least_20_web_languages_are_bundled() -> None:
    langs = ml.supported_languages()
    assert len(ml.bundled_configs()) >= 30
    for lang in ("en", "ru", "de", "ja", "es", "fr", "zh", "it", "pt", "nl", "pl", "vi", "tr", "id", "ar", "fa",
                 "ko", "cs", "sv", "uk", "hu", "el", "ro", "da", "fi", "th", "he", "hi"):
        assert lang in langs
        assert ml.language_settings(lang) is not None


@pytest.mark.parametrize("name", sorted(p.stem for p in DATA.glob("*_*.yml")))
def test_settings_equal_the_copied_fineweb2_file(name: str) -> None:
    raw = _file(name)
    s = ml.language_settings(name)
    assert s is not None and s.name == name
    p = s.quality_params()
    rep, fw, gq = p["gopher_repetition"], p["fineweb"], p["gopher_quality"]
    assert rep["dup_line_frac"] == raw["dup_line_frac"]
    assert rep["top_n_grams"] == tuple(tuple(x) for x in raw["top_n_grams"])
    assert rep["dup_n_grams"] == tuple(tuple(x) for x in raw["dup_n_grams"])
    assert fw["line_punct_thr"] == raw["line_punct_thr"]
    assert fw["new_line_ratio"] == raw["new_line_ratio"]
    assert s.stop_words == tuple(raw["stopwords"])
    assert s.language_score == raw["language_score"]
    off = s.switched_off
    assert not off or s.fallback  # anything switched off is explained
    if "stop_words" not in off:
        assert gq["stop_words"] == raw["stopwords"] and gq["min_stop_words"] == 2
    if "word_length" not in off:
        assert gq["min_avg_word_length"] == raw["min_avg_word_length"]
        assert gq["max_avg_word_length"] == raw["max_avg_word_length"]
    if "non_alpha" not in off:
        assert gq["max_non_alpha_words_ratio"] == raw["max_non_alpha_words_ratio"]
    for what in off:
        for key in ml.SWITCHES[what]:
            assert gq[key] in (None, []) and s.provenance[f"gopher_quality.{key}"].startswith("winnow: off")
    # FineWeb-2's pipeline constants, the same for every language.
    assert (rep["dup_para_frac"], rep["dup_para_char_frac"], rep["dup_line_char_frac"]) == (0, 0, 0)
    assert (fw["short_line_thr"], fw["char_duplicates_ratio"]) == (999, 0.1)
    assert s.rules == ("gopher_repetition", "fineweb", "gopher_quality")
    assert s.provenance["gopher_repetition.dup_line_frac"].startswith("FineWeb-2 config")
    assert f"configs/{name}.yml@" in s.source


def test_every_bundled_file_is_in_the_index_and_loads() -> None:
    files = {p.stem for p in DATA.glob("*_*.yml")}
    assert files == set(ml.bundled_configs())
    for name in files:
        assert set(ml.load_config(name)) == set(ml.CONFIG_KEYS) | {"language_score"}


def test_labels_map_to_configs() -> None:
    assert ml.canonical_name("de") == ml.canonical_name("__label__de") == ml.canonical_name("DE") == "deu_Latn"
    assert ml.canonical_name("deu_Latn") == "deu_Latn"
    assert ml.canonical_name("zh") == ml.canonical_name("zho_Hans") == "cmn_Hani"
    assert ml.canonical_name("no") == ml.canonical_name("nb") == "nob_Latn"
    assert ml.canonical_name("en") == ml.canonical_name("eng_Latn") == "eng_Latn"
    assert ml.canonical_name("eu") is None


def test_unknown_language_has_no_settings_and_its_fallback_skips_the_stop_word_rule() -> None:
    for label in ("eu", "xx", "zz_Unknown", "und"):
        assert ml.language_settings(label) is None
        fb = ml.settings_for(label)
        gq = fb.quality_params()["gopher_quality"]
        assert gq["min_stop_words"] is None and gq["stop_words"] == []
        assert fb.fallback and "stop-word rule off" in fb.fallback
    assert ml.settings_for(None).name == "und"
    assert ml.settings_for("eu").word_tokenizer == "spacy:eu"  # datatrove assigns spaCy's Basque


def test_no_non_english_label_ever_gets_english_stop_words() -> None:
    for label in LID176:
        s = ml.settings_for(label)
        gq = s.quality_params()["gopher_quality"]
        if label == "en":
            assert "stop_words" not in gq and s.stop_words == tuple(STOP_WORDS)
            continue
        # Either the language's own FineWeb-2 list or no stop-word rule at all.
        assert gq.get("stop_words") is not None and set(gq["stop_words"]) != set(STOP_WORDS)
        if gq["min_stop_words"] is not None:
            assert tuple(gq["stop_words"]) == s.stop_words and s.source.startswith("huggingface/fineweb-2")


def test_user_params_override_language_settings() -> None:
    s = ml.language_settings("de")
    assert s is not None
    p = s.quality_params({"gopher_quality": {"min_doc_words": 30}, "fineweb": {"line_punct_thr": 0.2}})
    assert p["gopher_quality"]["min_doc_words"] == 30 and p["gopher_quality"]["stop_words"][0] == "der"
    assert p["fineweb"]["line_punct_thr"] == 0.2 and p["fineweb"]["short_line_thr"] == 999
    p["gopher_quality"]["stop_words"].append("xyz")
    assert "xyz" not in s.quality_params()["gopher_quality"]["stop_words"]  # a copy each time
    assert {s: 1}[ml.language_settings("de")] == 1  # cached: the same object, usable as a key


def test_english_settings_are_todays_stage() -> None:
    en = ml.language_settings("en")
    assert en is not None
    assert en.rules == RULESETS
    assert en.quality_params() == DEFAULT_PARAMS
    assert en.word_tokenizer == "spacy:en" and en.fallback is None


@pytest.mark.parametrize("label", ml.supported_languages())
def test_every_parameter_is_accepted_by_datatrove(label: str) -> None:
    s = ml.language_settings(label)
    assert s is not None
    params = s.quality_params()
    for name, kwargs in params.items():
        accepted = set(inspect.signature(ml.DATATROVE_CLASSES[name]).parameters) - {"language", "exclusion_writer"}
        assert set(kwargs) <= accepted, (name, set(kwargs) - accepted)
    tok = s.tokenizer()
    built = build_rulesets(list(RULESETS), params, tok)  # C4 too, should a user run it
    assert [n for n, _ in built] == list(RULESETS)
    assert [n for n, _ in build_rulesets(list(s.rules), params, tok)] == list(s.rules)
    for name, rule in built:
        for key, value in params[name].items():
            attr = {"short_line_thr": "short_line_threshold", "stop_words": "stop_words"}.get(key, key)
            got = getattr(rule, attr)
            assert got == (set(value) if key == "stop_words" else value), (name, key)


def test_provenance_names_a_source_for_every_datatrove_parameter() -> None:
    s = ml.language_settings("ru")
    assert s is not None
    for name, cls in ml.DATATROVE_CLASSES.items():
        for key in inspect.signature(cls).parameters:
            if key not in ("language", "exclusion_writer"):
                assert s.provenance[f"{name}.{key}"]
    assert s.provenance["gopher_quality.min_doc_words"] == "datatrove 0.10.1 default"
    assert s.provenance["fineweb.short_line_thr"].startswith("FineWeb-2 pipeline")
    assert s.provenance["gopher_quality.stop_words"].startswith("FineWeb-2 config")


@pytest.mark.parametrize("page", _pages(), ids=lambda p: f"{p['lang']}:{(p['url'] or p['source'])[:40]}")
def test_real_text_is_kept_with_its_own_settings_and_dropped_with_englishs(page: dict, english_rules: list) -> None:
    s = ml.settings_for(page["lang"])
    own = build_rulesets(list(s.rules), s.quality_params(), s.tokenizer())
    # With Sudachi's words (FineWeb-2's), the shop page, a product list, is dropped as FineWeb-2
    # drops it (tests/peer/test_fineweb2_filtering.py checks datatrove decides the same).
    shop = (page["url"] or "").startswith("http://www.uraharajuku.st/shopdetail/")
    expected = ["fineweb:list_ratio", "gopher_quality:gopher_below_alpha_threshold"] if shop else []
    assert apply_rules(own, page["text"], stop_at_first=False)[1] == expected
    _, today = apply_rules(english_rules, page["text"], stop_at_first=True)
    if page["lang"] == "ja":
        # English words split Japanese badly: Gopher quality fails before it reaches stop words.
        assert today and today[0].startswith("gopher_quality:") and today[0] != STOP_RULE
    else:
        assert today == [STOP_RULE]


@pytest.mark.parametrize("lang", ["de", "ru", "ja"])
def test_stop_word_check_alone_english_words_fail_own_words_pass(lang: str) -> None:
    s = ml.settings_for(lang)
    own = {"gopher_quality": {**s.quality_params()["gopher_quality"], **ONLY_STOP_WORDS}}
    english = {"gopher_quality": ONLY_STOP_WORDS}
    tok = s.tokenizer()
    for page in (p for p in _pages() if p["lang"] == lang):
        text = page["text"]
        assert apply_rules(build_rulesets(["gopher_quality"], english, tok), text, True)[1] == [STOP_RULE]
        assert apply_rules(build_rulesets(["gopher_quality"], own, tok), text, True)[1] == []


EXTRA_LANGS = {"ja": "jpn_Jpan", "zh": "cmn_Hani", "vi": "vie_Latn", "ko": "kor_Hang", "th": "tha_Thai"}


@pytest.mark.parametrize("lang", sorted(EXTRA_LANGS))
def test_the_extras_languages_use_datatroves_tokenizer_with_every_rule(lang: str, shared_data: Path) -> None:
    """The `multilingual` extra is in the default install: FineWeb-2's segmenters, nothing off."""
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    name = EXTRA_LANGS[lang]
    s = ml.language_settings(lang)
    assert s is not None and s.word_tokenizer == f"datatrove:{name}"
    assert s.fallback is None and s.switched_off == ()
    raw, gq = _file(name), s.quality_params()["gopher_quality"]
    # Korean and Thai get their stop-word and word-length rules back.
    assert gq["stop_words"] == raw["stopwords"] and gq["min_stop_words"] == 2
    assert (gq["min_avg_word_length"], gq["max_avg_word_length"]) == (raw["min_avg_word_length"],
                                                                     raw["max_avg_word_length"])
    assert gq["max_non_alpha_words_ratio"] == raw["max_non_alpha_words_ratio"]
    texts = [r["text"] for r in _dev_rows(shared_data) if r["lang"] == lang][:20]
    dt = load_word_tokenizer(name)
    tok = s.tokenizer()
    for text in texts:
        assert tok.word_tokenize(text) == dt.word_tokenize(text)
    assert len(tok.word_tokenize(max(texts, key=len))) > 3  # words, not one unsplit phrase
    pkg = {"ja": "sudachipy==", "zh": "jieba==", "vi": "pyvi==", "ko": "kiwipiepy==", "th": "pythainlp=="}[lang]
    assert pkg in s.tokenizer_key and "datatrove==0.10.1" in s.tokenizer_key


@pytest.fixture
def minimal_install(monkeypatch: pytest.MonkeyPatch):
    """winnow installed without the `multilingual` extra: its segmenters are not found."""
    real = wt._have
    missing = {"sudachipy", "sudachidict-core", "jieba", "pyvi", "kiwipiepy", "kiwipiepy-model", "pythainlp",
               "indic-nlp-library"}
    monkeypatch.setattr(wt, "_have", lambda *dists: not (set(dists) & missing) and real(*dists))
    ml._fineweb2.cache_clear()
    yield
    monkeypatch.undo()
    ml._fineweb2.cache_clear()


def test_tokenizer_fallbacks_say_what_they_switch_off(minimal_install) -> None:
    ja, zh, vi, th, hi, ko = (ml.language_settings(x) for x in ("ja", "zh", "vi", "th", "hi", "ko"))
    assert ja and zh and vi and th and hi and ko
    assert ja.datatrove_tokenizer == "SpaCyTokenizer(ja)" and ko.datatrove_tokenizer == "KiwiTokenizer"
    assert ja.word_tokenizer == "spacy:zh" and "SudachiPy" in (ja.fallback or "")
    assert zh.word_tokenizer == "spacy:zh" and "jieba" in (zh.fallback or "")
    assert vi.word_tokenizer == "spacy:xx" and "pyvi" in (vi.fallback or "")
    assert all("winnow[multilingual]" in (s.fallback or "") for s in (ja, zh, vi, th, ko))
    gq = th.quality_params()["gopher_quality"]
    assert gq["min_stop_words"] is None and gq["min_avg_word_length"] is None and gq["max_avg_word_length"] is None
    assert gq["max_non_alpha_words_ratio"] is None
    assert th.provenance["gopher_quality.min_stop_words"].startswith("winnow: off")
    assert hi.word_tokenizer == "spacy:hi"
    assert ko.quality_params()["gopher_quality"]["min_stop_words"] is None
    assert ko.quality_params()["gopher_quality"]["max_avg_word_length"] == _file("kor_Hang")["max_avg_word_length"]
    assert ko.tokenizer_key.startswith("spacy:xx spacy==")
    for s in (ml.language_settings(x) for x in ("de", "ru", "fr", "ar", "uk")):
        assert s is not None and s.fallback is None and s.word_tokenizer.startswith("spacy:")


def test_bad_tokenizer_spec_is_an_error() -> None:
    with pytest.raises(wt.TokenizerError, match="unknown word tokenizer"):
        wt.make_word_tokenizer("nltk:de")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A copy of the bundled data that a test may break; caches cleared around it."""
    folder = tmp_path / "fineweb2"
    folder.mkdir()
    for p in DATA.iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    monkeypatch.setattr(ml, "_data_dir", lambda: folder)
    for fn in (ml._index, ml._fineweb2, ml.fallback_settings):
        fn.cache_clear()
    yield folder
    monkeypatch.undo()
    for fn in (ml._index, ml._fineweb2, ml.fallback_settings):
        fn.cache_clear()


def test_missing_bundled_file_fails_loudly(data_dir: Path) -> None:
    (data_dir / "deu_Latn.yml").unlink()
    with pytest.raises(ml.LanguageSettingsError, match=r"deu_Latn\.yml is missing.*reinstall winnow"):
        ml.language_settings("fr")


def test_missing_index_fails_loudly(data_dir: Path) -> None:
    (data_dir / "index.yml").unlink()
    with pytest.raises(ml.LanguageSettingsError, match=r"index\.yml is missing"):
        ml.supported_languages()


def test_malformed_config_names_file_and_field(data_dir: Path) -> None:
    text = (data_dir / "rus_Cyrl.yml").read_text(encoding="utf-8")
    (data_dir / "rus_Cyrl.yml").write_text(text.replace("new_line_ratio:", "newline_ratio:"), encoding="utf-8")
    with pytest.raises(ml.LanguageSettingsError, match=r"rus_Cyrl\.yml: missing field\(s\) \['new_line_ratio'\]"):
        ml.language_settings("ru")
    (data_dir / "rus_Cyrl.yml").write_text(text.replace("dup_line_frac: 0.322", "dup_line_frac: high"),
                                           encoding="utf-8")
    with pytest.raises(ml.LanguageSettingsError, match="field dup_line_frac: expected a number"):
        ml.language_settings("ru")
