"""Page bytes -> str: which declared charset to trust, and detection when none can be."""

from __future__ import annotations

import re

from resiliparse.parse.encoding import bytes_to_str, detect_encoding

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_:.\-]+)""", re.I)


def decode_html(body: bytes, http_charset: str | None) -> tuple[str, str]:
    """Bytes -> str, trusting in order: a charset that decodes cleanly (HTTP header, then
    <meta>), then detection. Returns (text, encoding used).

    Mislabelled pages are common (a UTF-8 page served as ISO-8859-1, or the reverse), so a
    declared charset is only used when the bytes are valid in it.
    """
    candidates: list[str] = []
    if http_charset:
        candidates.append(http_charset)
    m = _META_CHARSET.search(body[:4096])
    if m:
        candidates.append(m.group(1).decode("ascii", "ignore"))
    for enc in candidates:
        enc = enc.strip().lower()
        if enc in ("iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii"):
            # Browsers treat these as windows-1252 (WHATWG); and latin-1 never fails, so it
            # proves nothing: only accept it if the bytes are not valid UTF-8.
            try:
                return body.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                return body.decode("cp1252", "replace"), "cp1252"
        try:
            return body.decode(enc), enc
        except (UnicodeDecodeError, LookupError):
            continue
    detected = detect_encoding(body) or "utf-8"
    return bytes_to_str(body, detected, fallback_encodings=("utf-8", "cp1252")), detected
