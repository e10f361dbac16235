"""Page bytes -> str: which declared charset to trust, and detection when none can be.

Only labels of the WHATWG Encoding Standard (https://encoding.spec.whatwg.org/#names-and-labels)
are honoured, as browsers do: a crawled page can name any of Python's codecs in its <meta>, and
some of those are not text encodings at all (``unicode_escape`` turns ``\\u003c`` into a real
tag, ``rot13``, ``undefined`` raises) or are quadratic on hostile input (``punycode``).
"""

from __future__ import annotations

import re
from typing import Protocol

from resiliparse.parse.encoding import bytes_to_str, detect_encoding

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_:.\-]+)""", re.I)

# WHATWG encoding name -> (Python codec, its labels). The codec is None where the standard's
# decoder yields no usable text (``replacement``: a single U+FFFD; ``x-user-defined``: binary
# bytes as private-use characters); such a label is treated as no label.
_ENCODINGS: dict[str, tuple[str | None, str]] = {
    "UTF-8": ("utf-8", "unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8"),
    "IBM866": ("cp866", "866 cp866 csibm866 ibm866"),
    "ISO-8859-2": ("iso8859_2", "csisolatin2 iso-8859-2 iso-ir-101 iso8859-2 iso88592 iso_8859-2 "
                                "iso_8859-2:1987 l2 latin2"),
    "ISO-8859-3": ("iso8859_3", "csisolatin3 iso-8859-3 iso-ir-109 iso8859-3 iso88593 iso_8859-3 "
                                "iso_8859-3:1988 l3 latin3"),
    "ISO-8859-4": ("iso8859_4", "csisolatin4 iso-8859-4 iso-ir-110 iso8859-4 iso88594 iso_8859-4 "
                                "iso_8859-4:1988 l4 latin4"),
    "ISO-8859-5": ("iso8859_5", "csisolatincyrillic cyrillic iso-8859-5 iso-ir-144 iso8859-5 iso88595 "
                                "iso_8859-5 iso_8859-5:1988"),
    "ISO-8859-6": ("iso8859_6", "arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 "
                                "iso-8859-6 iso-8859-6-e iso-8859-6-i iso-ir-127 iso8859-6 iso88596 "
                                "iso_8859-6 iso_8859-6:1987"),
    "ISO-8859-7": ("iso8859_7", "csisolatingreek ecma-118 elot_928 greek greek8 iso-8859-7 iso-ir-126 "
                                "iso8859-7 iso88597 iso_8859-7 iso_8859-7:1987 sun_eu_greek"),
    "ISO-8859-8": ("iso8859_8", "csiso88598e csisolatinhebrew hebrew iso-8859-8 iso-8859-8-e iso-ir-138 "
                                "iso8859-8 iso88598 iso_8859-8 iso_8859-8:1988 visual"),
    "ISO-8859-8-I": ("iso8859_8", "csiso88598i iso-8859-8-i logical"),
    "ISO-8859-10": ("iso8859_10", "csisolatin6 iso-8859-10 iso-ir-157 iso8859-10 iso885910 l6 latin6"),
    "ISO-8859-13": ("iso8859_13", "iso-8859-13 iso8859-13 iso885913"),
    "ISO-8859-14": ("iso8859_14", "iso-8859-14 iso8859-14 iso885914"),
    "ISO-8859-15": ("iso8859_15", "csisolatin9 iso-8859-15 iso8859-15 iso885915 iso_8859-15 l9"),
    "ISO-8859-16": ("iso8859_16", "iso-8859-16"),
    "KOI8-R": ("koi8_r", "cskoi8r koi koi8 koi8-r koi8_r"),
    "KOI8-U": ("koi8_u", "koi8-ru koi8-u"),
    "macintosh": ("mac_roman", "csmacintosh mac macintosh x-mac-roman"),
    "windows-874": ("cp874", "dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874"),
    "windows-1250": ("cp1250", "cp1250 windows-1250 x-cp1250"),
    "windows-1251": ("cp1251", "cp1251 windows-1251 x-cp1251"),
    "windows-1252": ("cp1252", "ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 "
                               "iso8859-1 iso88591 iso_8859-1 iso_8859-1:1987 l1 latin1 us-ascii "
                               "windows-1252 x-cp1252"),
    "windows-1253": ("cp1253", "cp1253 windows-1253 x-cp1253"),
    "windows-1254": ("cp1254", "cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 "
                               "iso_8859-9:1989 l5 latin5 windows-1254 x-cp1254"),
    "windows-1255": ("cp1255", "cp1255 windows-1255 x-cp1255"),
    "windows-1256": ("cp1256", "cp1256 windows-1256 x-cp1256"),
    "windows-1257": ("cp1257", "cp1257 windows-1257 x-cp1257"),
    "windows-1258": ("cp1258", "cp1258 windows-1258 x-cp1258"),
    "x-mac-cyrillic": ("mac_cyrillic", "x-mac-cyrillic x-mac-ukrainian"),
    # The standard decodes GBK with the gb18030 decoder (a superset).
    "GBK": ("gb18030", "chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 x-gbk"),
    "gb18030": ("gb18030", "gb18030"),
    "Big5": ("big5hkscs", "big5 big5-hkscs cn-big5 csbig5 x-x-big5"),
    "EUC-JP": ("euc_jp", "cseucpkdfmtjapanese euc-jp x-euc-jp"),
    "ISO-2022-JP": ("iso2022_jp", "csiso2022jp iso-2022-jp"),
    # Windows-31J and windows-949 are the standard's Shift_JIS and EUC-KR (supersets of the ISO sets).
    "Shift_JIS": ("cp932", "csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis"),
    "EUC-KR": ("cp949", "cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 "
                        "ksc5601 ksc_5601 windows-949"),
    "replacement": (None, "csiso2022kr hz-gb-2312 iso-2022-cn iso-2022-cn-ext iso-2022-kr replacement"),
    "UTF-16BE": ("utf-16-be", "unicodefffe utf-16be"),
    "UTF-16LE": ("utf-16-le", "csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff utf-16 utf-16le"),
    "x-user-defined": (None, "x-user-defined"),
}

LABELS: dict[str, str] = {label: name for name, (_, labels) in _ENCODINGS.items() for label in labels.split()}
"""WHATWG label -> encoding name, for every label the standard defines."""

_UTF16 = frozenset({"UTF-16BE", "UTF-16LE"})
_BOMS = ((b"\xef\xbb\xbf", "UTF-8"), (b"\xfe\xff", "UTF-16BE"), (b"\xff\xfe", "UTF-16LE"))
# Not decoded strictly: every byte sequence is valid in windows-1252 the way browsers read it,
# so "it decodes" proves nothing; see decode_html.
_LATIN = "windows-1252"


class Counts(Protocol):
    """Where decode_html counts a fallback (``StageStats`` fits)."""
    @property
    def counters(self) -> dict[str, int]: ...


def encoding_for_label(label: str | None) -> str | None:
    """The WHATWG encoding name a charset label stands for, or None if it is not a label."""
    if not label:
        return None
    return LABELS.get(label.strip(" \t\n\f\r\"'").lower())


def _decode_as(body: bytes, name: str) -> str | None:
    """``body`` in the encoding ``name``, or None where the bytes contradict it."""
    codec = _ENCODINGS[name][0]
    if codec is None:
        return None
    if name in _UTF16 and b"\x00" not in body[:4096]:
        return None  # markup in UTF-16 has a NUL beside every ASCII character
    try:
        text = body.decode(codec)
    except UnicodeDecodeError:
        return None
    if b"<" in body[:4096] and "<" not in text[:4096]:
        return None  # the bytes are markup, the decoded text is not: the label is wrong
    return text


def decode_html(body: bytes, http_charset: str | None, stats: Counts | None = None) -> tuple[str, str]:
    """Bytes -> str, trusting in order: a byte-order mark, then a charset that the bytes do not
    contradict (HTTP header, then <meta>), then detection. Returns (text, the WHATWG name of the
    encoding used, lower case: "utf-8", "windows-1252", "gbk", ...).

    Mislabelled pages are common (a UTF-8 page served as ISO-8859-1, or the reverse), so a
    declared charset is only used when the bytes are valid in it. When a page declared a charset
    and none could be used, ``charset_fallback`` is counted in ``stats``.
    """
    for bom, bom_name in _BOMS:
        if body.startswith(bom):
            try:  # a byte-order mark outranks every label, as in browsers
                return body[len(bom):].decode(str(_ENCODINGS[bom_name][0])), bom_name.lower()
            except UnicodeDecodeError:
                break
    declared: list[str | None] = [http_charset]
    m = _META_CHARSET.search(body[:4096])
    if m:
        declared.append(m.group(1).decode("ascii", "ignore"))
    for i, label in enumerate(declared):
        name = encoding_for_label(label)
        if name is None:
            continue
        if i > 0 and name in _UTF16:
            name = "UTF-8"  # WHATWG: a <meta> read from ASCII-compatible bytes cannot mean UTF-16
        if name == _LATIN:
            # Browsers read iso-8859-1/ascii as windows-1252, and that never fails, so prefer
            # UTF-8 when the bytes are valid in it (a UTF-8 page labelled latin-1 is common).
            try:
                return body.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                return body.decode("cp1252", "replace"), _LATIN
        text = _decode_as(body, name)
        if text is not None:
            return text, name.lower()
    if stats is not None and any(declared):
        stats.counters["charset_fallback"] = stats.counters.get("charset_fallback", 0) + 1
    # The detector's answer goes through the same table, so no name outside it reaches Python.
    detected = detect_encoding(body) or "utf-8"
    found = encoding_for_label(detected) or encoding_for_label(detected.replace("_", "-"))
    if not found or _ENCODINGS[found][0] is None:
        found = "UTF-8"
    codec = str(_ENCODINGS[found][0])
    return bytes_to_str(body, codec, fallback_encodings=("utf-8", "cp1252")), found.lower()
