"""Mixed-script detection for internationalised host names (homograph flagging).

A host such as ``аpple.com`` (Cyrillic ``а`` + Latin ``pple``) renders like a trusted name while
being a different domain. UTS 39 "highly restrictive" says one label may use a single script, or
Latin together with the CJK combinations used in Japanese, Chinese and Korean writing. The stdlib
has no Unicode Script property, so a small range table covers the scripts that matter for
homographs; other letters fall back to the first word of their Unicode name (``THAI``,
``CHEROKEE``, ...), which is the script for every block that is not in the table. Marks, digits
and hyphen are Common/Inherited and never count. The check is advisory and only runs for hosts
with punycode labels, so the ASCII fast path of canonicalisation never pays for it.
"""

from __future__ import annotations

import bisect
import unicodedata
from functools import lru_cache
from typing import Final

import ada_url

LATIN: Final = "Latin"
GREEK: Final = "Greek"
CYRILLIC: Final = "Cyrillic"
ARMENIAN: Final = "Armenian"
HEBREW: Final = "Hebrew"
ARABIC: Final = "Arabic"
HAN: Final = "Han"
HIRAGANA: Final = "Hiragana"
KATAKANA: Final = "Katakana"
HANGUL: Final = "Hangul"
BOPOMOFO: Final = "Bopomofo"

# Inclusive code point ranges, sorted by start and non-overlapping (checked at import).
_RANGES: Final[tuple[tuple[int, int, str], ...]] = (
    (0x0041, 0x005A, LATIN),
    (0x0061, 0x007A, LATIN),
    (0x00AA, 0x00AA, LATIN),
    (0x00BA, 0x00BA, LATIN),
    (0x00C0, 0x00D6, LATIN),
    (0x00D8, 0x00F6, LATIN),
    (0x00F8, 0x02AF, LATIN),
    (0x0370, 0x03FF, GREEK),
    (0x0400, 0x052F, CYRILLIC),
    (0x0531, 0x058F, ARMENIAN),
    (0x0591, 0x05FF, HEBREW),
    (0x0600, 0x06FF, ARABIC),
    (0x0750, 0x077F, ARABIC),
    (0x0870, 0x08FF, ARABIC),
    (0x1100, 0x11FF, HANGUL),
    (0x1C80, 0x1C8F, CYRILLIC),
    (0x1D00, 0x1D7F, LATIN),
    (0x1E00, 0x1EFF, LATIN),
    (0x1F00, 0x1FFF, GREEK),
    (0x2C60, 0x2C7F, LATIN),
    (0x2DE0, 0x2DFF, CYRILLIC),
    (0x2E80, 0x2FDF, HAN),
    (0x3005, 0x3005, HAN),
    (0x3007, 0x3007, HAN),
    (0x3021, 0x3029, HAN),
    (0x3038, 0x303B, HAN),
    (0x3041, 0x309F, HIRAGANA),
    (0x30A0, 0x30FF, KATAKANA),
    (0x3100, 0x312F, BOPOMOFO),
    (0x3131, 0x318F, HANGUL),
    (0x31A0, 0x31BF, BOPOMOFO),
    (0x31F0, 0x31FF, KATAKANA),
    (0x3400, 0x4DBF, HAN),
    (0x4E00, 0x9FFF, HAN),
    (0xA640, 0xA69F, CYRILLIC),
    (0xA720, 0xA7FF, LATIN),
    (0xA960, 0xA97F, HANGUL),
    (0xAB30, 0xAB6F, LATIN),
    (0xAC00, 0xD7FF, HANGUL),
    (0xF900, 0xFAFF, HAN),
    (0xFB00, 0xFB06, LATIN),
    (0xFB13, 0xFB17, ARMENIAN),
    (0xFB1D, 0xFB4F, HEBREW),
    (0xFB50, 0xFDFF, ARABIC),
    (0xFE70, 0xFEFF, ARABIC),
    (0x20000, 0x323AF, HAN),
)
_STARTS: Final = tuple(start for start, _, _ in _RANGES)

# UTS 39 "highly restrictive": besides a single script, these CJK writing systems may mix.
_ALLOWED_MIXES: Final[tuple[frozenset[str], ...]] = (
    frozenset({LATIN, HAN, HIRAGANA, KATAKANA}),
    frozenset({LATIN, HAN, BOPOMOFO}),
    frozenset({LATIN, HAN, HANGUL}),
)


def char_script(char: str) -> str | None:
    """Script of one character, or ``None`` when it is Common/Inherited (digits, marks, ...)."""
    code = ord(char)
    if code < 0x80:
        return LATIN if char.isalpha() else None
    category = unicodedata.category(char)
    if category[0] == "M":
        # Combining marks inherit the script of their base character.
        return None
    index = bisect.bisect_right(_STARTS, code) - 1
    if index >= 0 and code <= _RANGES[index][1]:
        return _RANGES[index][2]
    if category[0] != "L":
        return None
    # Outside the table: every remaining letter's Unicode name starts with its script's name.
    name = unicodedata.name(char, "")
    return name.split(" ", 1)[0].title() if name else "Unknown"


def label_scripts(label: str) -> frozenset[str]:
    """The scripts used by a Unicode label, ignoring Common/Inherited characters."""
    return frozenset(script for char in label if (script := char_script(char)) is not None)


def is_mixed_script(label: str) -> bool:
    """True when a Unicode label mixes scripts beyond what UTS 39 "highly restrictive" allows."""
    scripts = label_scripts(label)
    if len(scripts) <= 1:
        return False
    return not any(scripts <= allowed for allowed in _ALLOWED_MIXES)


@lru_cache(maxsize=4096)
def host_is_mixed_script(ascii_host: str) -> bool:
    """True when any label of a punycode (``xn--``) host decodes to a mixed-script label.

    Cached because the same few hosts are reported over and over.
    """
    unicode_host: str = ada_url.idna_to_unicode(ascii_host)
    return any(is_mixed_script(label) for label in unicode_host.split("."))
