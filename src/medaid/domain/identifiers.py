"""Identifiers' one door, :func:`tidy_id` (claim ids and person ids alike; docs/desk.md
*Identifiers*), with the patterns the vectorised readers use to send it only the values it may
change.  :mod:`medaid.domain.claims` gives the same names; they live here, with nothing but the
standard library, so that the batch's readers (:mod:`medaid.io.ids`) use them without importing
the claim model (pydantic): ``medaid batch`` then imports pydantic on its rules thread, while
the claim file is read.
"""

from __future__ import annotations

import unicodedata

#: A regular expression matching exactly the text :func:`tidy_id` leaves as it is, except an
#: ID number with a lower-case check character (:data:`LOWER_CHECK_PATTERN`): printable ASCII
#: with no space at either end.  Vectorised readers send only the values it does not match (or
#: that match :data:`LOWER_CHECK_PATTERN`) through :func:`tidy_id`.  Both are polars (Rust)
#: patterns: ``$`` is the end of the text, never a position before a final line break.
PLAIN_ID_PATTERN = r"^[!-~](?:[ -~]*[!-~])?$"
#: The Unicode categories :func:`tidy_id` removes: format characters and control characters.
INVISIBLE = frozenset({"Cf", "Cc"})
#: An 18-character resident ID number (居民身份证号码) whose check character is a lower-case ``x``.
LOWER_CHECK_PATTERN = r"^[0-9]{17}x$"


def tidy_id(text: str) -> str:
    """An identifier as medaid compares and stores it (claim ids and person ids alike):

    1. Unicode NFKC normalisation (full-width ``５００１…`` becomes ``5001…``, an ideographic
       or no-break space becomes a space);
    2. invisible characters removed: every Unicode format character (category ``Cf``: the
       zero-width space U+200B, zero-width (non-)joiners, the word joiner U+2060, the byte-order
       mark U+FEFF, the soft hyphen U+00AD, direction marks) and every control character
       (category ``Cc``: NUL, BEL, tab, line breaks, DEL, …), which no one can see either: an
       ID number with a stray NUL is the same person, under the same annual cap;
    3. white space trimmed at both ends (not inside);
    4. the check character of an 18-character ID number upper-cased (``…123x`` → ``…123X``).

    Nothing else changes: letters keep their case, inner spaces stay.  An identifier that is
    empty afterwards is refused where it is required (the claim, the row, the option)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    if not (text.isascii() and text.isprintable()):
        text = "".join(ch for ch in text if unicodedata.category(ch) not in INVISIBLE)
    text = text.strip()
    if len(text) == 18 and text[17] == "x" and text[:17].isascii() and text[:17].isdigit():
        text = text[:17] + "X"
    return text
