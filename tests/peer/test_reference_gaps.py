"""The edges where winnow's re-implementations differed from the references (issue 22), each
checked against the reference itself: datatrove's GopherRepetitionFilter, spaCy's sentencizer as
datatrove's C4 filter runs it, and datatrove's PIIFormatter."""

from __future__ import annotations

import random

import numpy as np
import pytest
from datatrove.data import Document
from datatrove.pipeline.filters import C4QualityFilter, GopherRepetitionFilter
from datatrove.pipeline.filters.gopher_repetition_filter import find_all_duplicate, find_top_duplicate, get_n_grams
from datatrove.pipeline.formatters.pii import PIIFormatter
from datatrove.utils.word_tokenizers import load_word_tokenizer

from winnow.filters.gopher_fast import FastGopherRepetitionFilter, _Grams, _string_hash
from winnow.filters.pii import PiiMasker
from winnow.filters.words import CachedSpacyTokenizer

TOK = CachedSpacyTokenizer("en")
WORDS = [f"word{i}z" for i in range(60)]


def both(text: str, **params):
    doc = Document(text=text, id="")
    return (GopherRepetitionFilter(language=TOK, **params).filter(doc),
            FastGopherRepetitionFilter(language=TOK, **params).filter(doc))


# --- Gopher repetition --------------------------------------------------------------------------

@pytest.mark.parametrize("a,b", [("ax!", "bPm"), ("mmmmmmmmmm", "gutreplsoi"), ("\x00a", "a"), ("\x00\x00", "\x00")])
def test_words_that_collided_by_construction_hash_apart(a, b):
    assert _string_hash(a)[:2] != _string_hash(b)[:2]


def test_sixty_distinct_words_with_x_then_y_every_third_word_are_kept():
    x = [("mmmmmmmmmm" if i % 3 == 0 else w) for i, w in enumerate(WORDS)]
    y = [("gutreplsoi" if i % 3 == 0 else w) for i, w in enumerate(WORDS)]
    ref, ours = both(" ".join(x) + " " + " ".join(y))
    assert ref is True and ours is True


def test_a_leading_nul_does_not_make_a_word_repeat_the_bare_word():
    nul = [("\x00" + w if i % 5 == 0 else w) for i, w in enumerate(WORDS)]
    ref, ours = both(" ".join(WORDS) + " " + " ".join(nul))
    assert ref is True and ours is True


@pytest.mark.parametrize("top", [((2, 0.01), (2, 0.9)), ((2, 0.9), (2, 0.01)), ((3, 0.01), (2, 0.01)),
                                 ((4, 0.01), (2, 0.9), (3, 0.01))])
def test_top_n_grams_entries_are_checked_in_the_order_given(top):
    text = "I am Frank, I am Frank, I am Frank. " + " ".join(WORDS[:20])
    ref, ours = both(text, top_n_grams=top)
    assert ref == ours and ref != True  # noqa: E712 - a tuple or True


def test_dup_n_grams_entries_are_checked_in_the_order_given():
    text = "buy cheap watches now " * 6 + " ".join(WORDS)
    for dup in (((7, 0.01), (5, 0.01)), ((5, 0.9), (5, 0.01)), ((6, 0.01), (6, 0.9))):
        ref, ours = both(text, dup_n_grams=dup)
        assert ref == ours and ref != True, dup  # noqa: E712


def test_equal_keys_are_confirmed_on_the_words():
    """Keys only propose: with every key equal (the worst collision), the counts are datatrove's."""
    rng = random.Random(0)
    for _ in range(200):
        words = [rng.choice(["a", "b", "ab", "c", "bc", "the", "cat"]) for _ in range(rng.randrange(1, 40))]
        m = len(words)
        zeros = [np.zeros(m, dtype=np.uint64) for _ in range(4)]
        ids = np.array([sorted(set(words)).index(w) for w in words], dtype=np.int64)
        lengths = np.array([len(w) for w in words], dtype=np.int64)
        grams = _Grams(words, *zeros, ids, lengths)
        for n in range(1, 6):
            top = find_top_duplicate(get_n_grams(words, n)) if get_n_grams(words, n) else None
            assert grams.top_chars(n) == top, (words, n)
            assert grams.repeated_chars(n) == find_all_duplicate(words, n), (words, n)


# --- C4 sentences --------------------------------------------------------------------------------

@pytest.mark.parametrize("text,count", [("Thanks a lot.  :)", 2), ("Thanks a lot. :)", 1), ("Done.\t!! Next", 3),
                                        ("  ", 1), ("", 0), ("End.  ", 2)])
def test_sentences_are_spacys_whitespace_tokens_included(text, count):
    spacy_spans = load_word_tokenizer("en").span_tokenize(text)
    assert TOK.span_tokenize(text) == spacy_spans
    assert len(spacy_spans) == count


def test_c4_keeps_what_datatrove_keeps_with_double_spaced_smileys():
    text = ("This is the first line of the document with some words.\n"
            "Here is the second line, also with plenty of words.\n"
            "Thanks a lot for reading this far.  :)\n"
            "We really hope that you enjoyed it.  !!")
    for language in ("en", TOK):  # datatrove with spaCy itself, then with winnow's tokenizer
        assert C4QualityFilter(filter_no_terminal_punct=False, language=language).filter(Document(text=text, id="")) is True


def test_sentence_spans_equal_spacys_on_random_text():
    spacy_tok = load_word_tokenizer("en")
    pieces = ["a", "b.", "Hi", ".", "!", "?", ":)", "!!", " ", "  ", "\t", "\n", "\u00a0", "\u2028", "(", ")",
              '"', "...", "Mr.", "U.S.", "\u3002", "e.g.", "1.5", "\r\n"]
    rng = random.Random(1)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 14)))
        assert TOK.span_tokenize(text) == spacy_tok.span_tokenize(text), repr(text)
        assert TOK.sent_tokenize(text) == spacy_tok.sent_tokenize(text), repr(text)


# --- PII -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,masked", [
    ("Write to us at...john.doe@gmail.com", "Write to us at...EMAIL"),
    ("email..email@example.com", "email..EMAIL"),
    ("Abc..123@example.com today", "Abc..EMAIL today"),
    ("john.smith@123.45.67.89", "EMAIL"),
    ("mail root@203.0.113.5.", "mail EMAIL."),
])
def test_addresses_fineweb_masks_are_masked_whole(text, masked):
    assert PiiMasker(replacements={"email": "EMAIL", "ip": "IP"}).mask(text)[0] == masked
    assert PIIFormatter(email_replacement="EMAIL", ip_replacement="IP").format(text) == masked


@pytest.mark.parametrize("text", ["pkg@1.2.3.4.5", "lodash@4.17.21", "x@1.2.3.4abc", "a@300.1.1.1"])
def test_numeric_domains_that_are_no_ip_are_not_addresses(text):
    assert PiiMasker().find(text) == []


def test_random_documents_of_colliding_prone_words_decide_as_datatrove():
    """Short words over a tiny alphabet with NULs, repeated and shifted: the hash and its
    confirmation against datatrove's string comparison."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    word = st.text(alphabet="ab\x00c", min_size=1, max_size=3)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(word, min_size=1, max_size=60), st.integers(1, 4))
    def same(words, copies):
        text = " ".join(words * copies)
        ref, ours = both(text)
        assert ref == ours

    same()
