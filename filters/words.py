"""spaCy's word and sentence splitting, as datatrove's quality filters use it, made cheap.

datatrove's Gopher/C4/FineWeb filters spend most of their time in ``spacy.blank(lang)``:
every filter tokenizes the whole text again, and C4 runs the sentencizer line by line.
spaCy splits text at whitespace and tokenizes each whitespace-free chunk on its own (its
own cache is keyed by chunk), so the tokens of a text are exactly the concatenation of the
tokens of its chunks. This tokenizer keeps a cache of chunk -> tokens (web text reuses a few
hundred thousand distinct chunks), calls spaCy only on unseen chunks, and memoises the last
text so that the filters of one document share one tokenization. Results are spaCy's own.
Sentences are those of spaCy's sentencizer (as datatrove adds it), whitespace tokens included:
each chunk's sentencizer result is cached for both states it can be entered in, and the
whitespace between chunks (anything but one " ") is a token, as in spaCy; spans are equal to
spaCy's on any input (tests/peer and tests/unit check it on random and real text).

It plugs into datatrove's filters through their own extension point: ``language=`` accepts a
``WordTokenizer`` instance.
"""

from __future__ import annotations

import sys
import threading

from datatrove.utils.word_tokenizers import WordTokenizer

_DEFAULT_CACHE = 500_000
# Per chunk: its words, and spaCy's sentencizer over its tokens entered without and with a
# sentence end pending, each (offsets in the chunk where a sentence starts, pending after it).
_Sentencized = tuple[tuple[int, ...], bool]
_Chunk = tuple[tuple[str, ...], _Sentencized, _Sentencized]


def import_spacy_without_torch():
    """Import spaCy without letting thinc import torch.

    thinc imports torch eagerly whenever it is installed (it is, with the `rephrase` extra):
    about 2 s and 200 MB in every worker process, for a blank tokenizer that never uses it.
    `import torch` is made to fail only while spaCy is imported; a later real `import torch`
    (the transformers backend) works as usual."""
    if "spacy" in sys.modules or "torch" in sys.modules:
        import spacy  # noqa: PLC0415 - spaCy must be imported with torch blocked (see above)

        return spacy
    sys.modules["torch"] = None  # type: ignore[assignment]  # ImportError for `import torch`
    try:
        import spacy  # noqa: PLC0415 - as above
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return spacy


class CachedSpacyTokenizer(WordTokenizer):
    """spaCy's word and sentence splitting with a chunk cache; datatrove's filters accept it as their tokenizer."""
    def __init__(self, language: str = "en", max_cache: int = _DEFAULT_CACHE) -> None:
        super().__init__(language)
        spacy = import_spacy_without_torch()
        from spacy.pipeline.sentencizer import Sentencizer  # noqa: PLC0415 - after the torch-free import

        self._nlp = spacy.blank(language)
        self._sent_end = frozenset(Sentencizer.default_punct_chars)
        self._cache: dict[str, _Chunk] = {}
        self._max_cache = max_cache
        self._memo = threading.local()

    def _chunk(self, chunk: str) -> _Chunk:
        entry = self._cache.get(chunk)
        if entry is None:
            toks = [(t.text, t.is_punct) for t in self._nlp.tokenizer(chunk) if t.text.strip()]
            entry = (tuple(t for t, _ in toks), self._sentencize(toks, False), self._sentencize(toks, True))
            if len(self._cache) >= self._max_cache:
                self._cache.clear()  # bounded memory; refills with the frequent chunks
            self._cache[chunk] = entry
        return entry

    def _sentencize(self, toks: list[tuple[str, bool]], seen_end: bool) -> tuple[tuple[int, ...], bool]:
        """spaCy's sentencizer over one chunk's tokens, entered with or without a sentence end
        pending: (offsets in the chunk where a sentence starts, whether one is pending after it).
        A sentence ends after a sentence-final punctuation token, at the next token that is not
        punctuation."""
        starts: list[int] = []
        pos = 0
        for tok, is_punct in toks:
            if seen_end and not is_punct and tok not in self._sent_end:
                starts.append(pos)
                seen_end = False
            elif tok in self._sent_end:
                seen_end = True
            pos += len(tok)
        return tuple(starts), seen_end

    def word_tokenize(self, text: str) -> list[str]:
        """spaCy's tokens of the text (memoised: the rule sets of one document share them)."""
        memo = self._memo
        if getattr(memo, "text", None) is text:
            return memo.words
        chunk = self._chunk
        words = [tok for c in text.split() for tok in chunk(c)[0]]
        memo.text, memo.words = text, words
        return words

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        """Sentence spans of spaCy's sentencizer on spaCy's tokens, whitespace tokens included.

        spaCy keeps one " " after a token as that token's trailing space; any other whitespace
        (a second space, a tab, a newline, whitespace at the start or end) is a token of its own.
        It is not punctuation: after a sentence end it starts the next sentence, so "Thanks a
        lot.  :)" is two sentences and "Thanks a lot. :)" one. It leaves no sentence end pending,
        so it can end a sentence only at the end of the text."""
        spans: list[tuple[int, int]] = []
        chunk = self._chunk
        start = -1  # first character of the current sentence, -1 before the first token
        end = pos = 0  # end of the last chunk; start of the next
        seen_end = False
        for c in text.split():
            pos = text.index(c, pos)
            if start < 0:
                start = 0  # a chunk, or whitespace before it: the first token
            elif pos - end > 1 or text[end] != " ":  # a whitespace token between the chunks
                if seen_end:
                    spans.append((start, end))
                    start, seen_end = end + (text[end] == " "), False
            entry = chunk(c)
            starts, seen_end = entry[2] if seen_end else entry[1]
            for off in starts:
                spans.append((start, end if off == 0 else pos + off))
                start = pos + off
            end = pos = pos + len(c)
        if start < 0:  # no chunk: nothing, or one whitespace token
            return [(0, len(text))] if text else []
        rest = len(text) - end
        if rest > 1 or (rest == 1 and text[end] != " "):  # a whitespace token at the end
            if seen_end:
                spans.append((start, end))
                start = end + (text[end] == " ")
            end = len(text)
        spans.append((start, end))
        return spans

    def sent_tokenize(self, text: str) -> list[str]:
        """The text's sentences, by spaCy's sentencizer rule."""
        return [text[a:b].strip() for a, b in self.span_tokenize(text) if text[a:b].strip()]
