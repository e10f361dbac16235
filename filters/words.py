"""spaCy's word and sentence splitting, as datatrove's quality filters use it, made cheap.

datatrove's Gopher/C4/FineWeb filters spend most of their time in ``spacy.blank(lang)``:
every filter tokenizes the whole text again, and C4 runs the sentencizer line by line.
spaCy splits text at whitespace and tokenizes each whitespace-free chunk on its own (its
own cache is keyed by chunk), so the tokens of a text are exactly the concatenation of the
tokens of its chunks. This tokenizer keeps a cache of chunk -> tokens (web text reuses a few
hundred thousand distinct chunks), calls spaCy only on unseen chunks, and memoises the last
text so that the filters of one document share one tokenization. Results are spaCy's own.

It plugs into datatrove's filters through their own extension point: ``language=`` accepts a
``WordTokenizer`` instance.
"""

from __future__ import annotations

import re
import sys
import threading

from datatrove.utils.word_tokenizers import WordTokenizer

_DEFAULT_CACHE = 500_000
# A text as spaCy's tokenizer walks it: runs of non-whitespace (chunks, group 1) and of
# whitespace; \s and str.split() both use Python's isspace, as spaCy's tokenizer does.
_PIECES = re.compile(r"(\S+)|\s+")


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
        self._cache: dict[str, tuple[tuple[str, bool], ...]] = {}
        self._max_cache = max_cache
        self._memo = threading.local()

    def _chunk(self, chunk: str) -> tuple[tuple[str, bool], ...]:
        toks = self._cache.get(chunk)
        if toks is None:
            toks = tuple((t.text, t.is_punct) for t in self._nlp.tokenizer(chunk) if t.text.strip())
            if len(self._cache) >= self._max_cache:
                self._cache.clear()  # bounded memory; refills with the frequent chunks
            self._cache[chunk] = toks
        return toks

    def word_tokenize(self, text: str) -> list[str]:
        """spaCy's tokens of the text (memoised: the rule sets of one document share them)."""
        memo = self._memo
        if getattr(memo, "text", None) is text:
            return memo.words
        chunk = self._chunk
        words = [tok for c in text.split() for tok, _ in chunk(c)]
        memo.text, memo.words = text, words
        return words

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        """Sentence spans of spaCy's sentencizer on spaCy's tokens, whitespace tokens included.

        spaCy keeps one " " after a token as that token's trailing space; any other whitespace
        (a second space, a tab, a newline, whitespace at the start) is a token of its own. Such a
        token is not punctuation, so after a sentence end it starts the next sentence: "Thanks a
        lot.  :)" is two sentences, "Thanks a lot. :)" one. A sentence ends after a token that is
        sentence-final punctuation, at the next token that is not punctuation."""
        spans: list[tuple[int, int]] = []
        sent_end = self._sent_end
        start = -1  # first character of the current sentence, -1 before the first token
        end = 0  # end of the last token
        seen_end = False
        for m in _PIECES.finditer(text):
            pos = m.start()
            if m.lastindex is None:  # a whitespace run: a token, less one leading " " after a token
                if pos and text[pos] == " ":
                    pos += 1
                    if pos == m.end():
                        continue
                if start < 0:
                    start = pos
                elif seen_end:
                    spans.append((start, end))
                    start, seen_end = pos, False
                end = m.end()
                continue
            for tok, is_punct in self._chunk(m.group()):
                if start < 0:
                    start = pos
                elif seen_end and not is_punct and tok not in sent_end:
                    spans.append((start, end))
                    start, seen_end = pos, False
                if tok in sent_end:
                    seen_end = True
                pos += len(tok)
                end = pos
        if start >= 0:
            spans.append((start, end))
        return spans

    def sent_tokenize(self, text: str) -> list[str]:
        """The text's sentences, by spaCy's sentencizer rule."""
        return [text[a:b].strip() for a, b in self.span_tokenize(text) if text[a:b].strip()]
