"""Text encodings of CSV files: UTF-8 (with or without BOM) or GB18030/GBK as Chinese Excel
saves them, detected once (:func:`detect_encoding`); lines ended by a carriage return alone
(:func:`cr_only`); a UTF-8 copy of a file in another encoding, made piece by piece
(:func:`utf8_copy`)."""

from __future__ import annotations

import codecs
from pathlib import Path

from ..errors import Problem
from .raw import ReadError, file_format

#: How much of a file's start :func:`detect_encoding` judges.
SNIFF_BYTES = 1 << 20
#: How much of a CSV file's start is looked at for its line ends (and its header).
HEAD_BYTES = 1 << 16


#: The encoding of a CSV file that is not UTF-8: GB18030, which reads GBK as Chinese Excel
#: saves CSV (and every other byte sequence GBK can hold).
GB18030 = "gb18030"


def as_utf8(data: bytes, encoding: str = GB18030) -> bytes:
    """``data`` written in ``encoding`` recoded as UTF-8 (:class:`UnicodeDecodeError` where it
    does not decode): the recoding of the CSV readers, the results reader and the Spark job."""
    return data.decode(encoding).encode("utf-8")


def detect_encoding(head: bytes) -> str:
    """``utf-8`` (with or without BOM) or ``gb18030`` (which reads GBK, as Chinese Excel saves
    CSV), judged on ``head``, a file's first bytes (:data:`SNIFF_BYTES` of them: a character cut
    at the end is not held against UTF-8).  The one detection of the CSV readers, the UTF-8
    copy of a GBK file, the results reader and the Spark job."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return GB18030


def sniff_encoding(path: Path, encoding: str | None, source: str) -> str:
    """The encoding of the file at ``path``: ``encoding`` (``--encoding``, by its canonical
    codec name; an unknown one is refused) or :func:`detect_encoding` of its first megabyte."""
    if encoding:
        try:
            return codecs.lookup(encoding).name
        except LookupError:
            raise ReadError(Problem(f"unknown encoding {encoding!r}", source=source)) from None
    with open(path, "rb") as f:
        return detect_encoding(f.read(SNIFF_BYTES))


def cr_only(head: bytes) -> bool:
    """Whether text whose first bytes are ``head`` ends its lines with a carriage return alone
    (Excel's "CSV (Macintosh)"): a ``\\r`` and no ``\\n``.  Such files are read with each
    ``\\r`` taken as a line break (see :func:`utf8_copy`)."""
    return b"\r" in head and b"\n" not in head


def utf8_copy(path: str | Path, encoding: str | None = None) -> Path | None:
    """A temporary UTF-8 copy of a CSV file written in another encoding (GB18030/GBK as Chinese
    Excel writes it: detected, or ``encoding``) or with lines ended by a carriage return alone
    (:func:`cr_only`; each ``\\r`` becomes ``\\n``), made piece by piece so that the file is
    never in memory whole; ``None`` when the file is UTF-8 with ``\\n`` line ends already, is
    not a CSV file, or does not decode (the whole-file reader then says where).  Lines stay
    lines, so line numbers are the original's.  The caller removes the copy (it is created readable by its owner only,
    in the system's temporary folder)."""
    import os
    import tempfile

    path = Path(path)
    if not path.is_file() or file_format(path) != "csv":
        return None
    try:
        enc = sniff_encoding(path, encoding, str(path))
    except ReadError:
        return None
    with open(path, "rb") as f:
        cr = cr_only(f.read(HEAD_BYTES))
    if enc == "utf-8" and not cr:
        return None
    decoder = codecs.getincrementaldecoder(enc)(errors="strict")

    def text(chunk: bytes, final: bool = False) -> bytes:
        t = decoder.decode(chunk, final=final)
        return (t.replace("\r", "\n") if cr else t).encode("utf-8")

    try:
        fd, name = tempfile.mkstemp(prefix="medaid-", suffix=".csv")
    except OSError as e:
        raise _no_copy(path, e) from None
    try:
        with open(path, "rb") as f, os.fdopen(fd, "wb") as out:
            while chunk := f.read(1 << 22):
                out.write(text(chunk))
            out.write(text(b"", final=True))
    except UnicodeDecodeError:
        os.unlink(name)
        return None
    except UnicodeError as e:  # a codec that refuses the text as a whole (UTF-16 without a byte-order mark)
        os.unlink(name)
        raise ReadError(Problem(f"cannot be read as {enc} ({e})", source=str(path))) from None
    except OSError as e:  # a full disk (ENOSPC), a quota: the copy goes, the run is refused
        os.unlink(name)
        raise _no_copy(path, e) from None
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _no_copy(path: Path, e: OSError) -> ReadError:
    """The run is refused: the UTF-8 copy of a GBK file could not be written (disk full...)."""
    import tempfile

    return ReadError(Problem(
        f"is not UTF-8, and its temporary UTF-8 copy cannot be written in "
        f"{tempfile.gettempdir()} ({e.strerror or type(e).__name__}); free space there, set "
        "TMPDIR to a folder with room for a copy of the file, or save the file as UTF-8",
        source=str(path)))
