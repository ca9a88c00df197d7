"""Text out of uploaded files, and chunks out of text.

Every failure is an ``ExtractionError`` whose message a person understands; parsers are guarded
against the known bombs (encrypted and malformed PDFs, zip bombs dressed as DOCX).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

from .models import DocumentKind

EXTENSIONS = {".pdf": DocumentKind.PDF, ".docx": DocumentKind.DOCX, ".txt": DocumentKind.TXT, ".md": DocumentKind.MD,
              ".markdown": DocumentKind.MD}  # fmt: skip
DOCX_MAX_UNCOMPRESSED = 100 * 2**20  # bytes a DOCX may unpack to
DOCX_MAX_RATIO = 100  # a member compressed more than this is a bomb, not a document
PDF_MAX_PAGES = 2000


class ExtractionError(Exception):
    """The file cannot be read; the message says why, for the person who uploaded it."""


@dataclass
class Page:
    number: int | None  # 1-based page number for PDFs, None for formats without pages
    text: str


def kind_for(filename: str, head: bytes) -> str:
    """The document kind, from the extension, checked against the content's first bytes."""
    suffix = ("." + filename.rsplit(".", 1)[-1].lower()) if "." in filename else ""
    kind = EXTENSIONS.get(suffix)
    if kind is None:
        raise ExtractionError(
            f"Files of type {suffix or '(no extension)'} are not supported; upload PDF, DOCX, TXT or MD."
        )
    if kind == DocumentKind.PDF and not head.startswith(b"%PDF-"):
        raise ExtractionError("The file is named .pdf but is not a PDF.")
    if kind == DocumentKind.DOCX and not head.startswith(b"PK\x03\x04"):
        raise ExtractionError("The file is named .docx but is not a Word document.")
    if kind in (DocumentKind.TXT, DocumentKind.MD) and (b"\x00" in head or head.startswith((b"%PDF-", b"PK\x03\x04"))):
        raise ExtractionError(f"The file is named {suffix} but holds binary data, not text.")
    return kind


def _pdf(data: bytes) -> list[Page]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ExtractionError("The PDF is encrypted (password-protected); upload an unprotected copy.")
        if len(reader.pages) > PDF_MAX_PAGES:
            raise ExtractionError(f"The PDF has {len(reader.pages)} pages; the limit is {PDF_MAX_PAGES}.")
        pages = [Page(number, page.extract_text() or "") for number, page in enumerate(reader.pages, start=1)]
    except FileNotDecryptedError:
        raise ExtractionError("The PDF is encrypted (password-protected); upload an unprotected copy.") from None
    except ExtractionError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError, RecursionError) as exc:
        raise ExtractionError(f"The PDF is damaged or truncated and cannot be read ({type(exc).__name__}).") from None
    if not any(page.text.strip() for page in pages):
        raise ExtractionError("The PDF has no text to read: it is empty or holds only images (scans need OCR).")
    return pages


def _check_zip(data: bytes) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ExtractionError("The Word document is damaged and cannot be read.") from None
    total = 0
    for member in archive.infolist():
        total += member.file_size
        if (
            member.compress_size
            and member.file_size / member.compress_size > DOCX_MAX_RATIO
            and member.file_size > 2**20
        ):
            raise ExtractionError("The Word document unpacks to far more than its size (a zip bomb); it was refused.")
    if total > DOCX_MAX_UNCOMPRESSED:
        raise ExtractionError(
            f"The Word document unpacks to {total // 2**20} MB; the limit is {DOCX_MAX_UNCOMPRESSED // 2**20} MB."
        )


def _docx(data: bytes) -> list[Page]:
    _check_zip(data)
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ExtractionError(f"The Word document is damaged and cannot be read ({type(exc).__name__}).") from None
    blocks = [paragraph.text for paragraph in document.paragraphs if paragraph.text.strip()]
    for table in document.tables:
        for row in table.rows:
            cells = [cell.text.strip() for cell in row.cells if cell.text.strip()]
            if cells:
                blocks.append(" | ".join(cells))
    text = "\n\n".join(blocks)
    if not text.strip():
        raise ExtractionError("The Word document has no text.")
    return [Page(None, text)]


def _text(data: bytes) -> list[Page]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is None:
            raise ExtractionError("The text file's encoding cannot be recognised; save it as UTF-8.") from None
        text = str(best)
    if not text.strip():
        raise ExtractionError("The file is empty.")
    return [Page(None, text)]


EXTRACTORS: dict[str, Callable[[bytes], list[Page]]] = {
    DocumentKind.PDF: _pdf,
    DocumentKind.DOCX: _docx,
    DocumentKind.TXT: _text,
    DocumentKind.MD: _text,
}


def extract(kind: str, data: bytes) -> list[Page]:
    return EXTRACTORS[kind](data)


# --- Chunking -----------------------------------------------------------------------------------

SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n{2,}")


@dataclass
class Piece:
    text: str
    page: int | None
    tokens: int


@dataclass
class TextChunk:
    text: str
    page: int | None
    tokens: int


def pieces(pages: list[Page], count_tokens: Callable[[str], int], limit: int) -> list[Piece]:
    """Sentences and paragraphs (never longer than ``limit`` tokens: long ones are cut by words)."""
    found: list[Piece] = []
    for page in pages:
        for part in SENTENCE_END.split(page.text):
            part = " ".join(part.split())
            if not part:
                continue
            tokens = count_tokens(part)
            if tokens <= limit:
                found.append(Piece(part, page.number, tokens))
                continue
            words = part.split(" ")
            step = max(1, int(len(words) * limit / tokens))
            for start in range(0, len(words), step):
                text = " ".join(words[start : start + step])
                found.append(Piece(text, page.number, count_tokens(text)))
    return found


def chunk(pages: list[Page], count_tokens: Callable[[str], int], size: int, overlap: int) -> list[TextChunk]:
    """Chunks of at most ``size`` tokens on sentence or paragraph boundaries, each starting with
    about ``overlap`` tokens of the previous one (within a page: pages never share a chunk)."""
    chunks: list[TextChunk] = []
    current: list[Piece] = []
    for piece in pieces(pages, count_tokens, size):
        if current and current[-1].page != piece.page:
            # A new page starts a new chunk, so that a citation names one page.
            chunks.append(TextChunk(" ".join(p.text for p in current), current[0].page, sum(p.tokens for p in current)))
            current = []
        elif current and sum(p.tokens for p in current) + piece.tokens > size:
            chunks.append(TextChunk(" ".join(p.text for p in current), current[0].page, sum(p.tokens for p in current)))
            carried: list[Piece] = []
            for previous in reversed(current):
                if sum(p.tokens for p in carried) + previous.tokens > overlap:
                    break
                carried.insert(0, previous)
            if sum(p.tokens for p in carried) + piece.tokens > size:
                carried = []
            current = carried
        current.append(piece)
    if current:
        chunks.append(TextChunk(" ".join(p.text for p in current), current[0].page, sum(p.tokens for p in current)))
    return chunks
