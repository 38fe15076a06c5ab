"""Reading the imagine form (multipart/form-data) with limits on files, sizes and fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aiohttp import BodyPartReader, web

from bot.errors import InvalidRequest, ReferenceImageError

__all__ = [
    "MAX_FIELD_BYTES",
    "MAX_FILES",
    "MAX_FILE_BYTES",
    "ImagineForm",
    "Upload",
    "read_imagine_form",
]

MAX_FILE_BYTES: Final = 20 * 1024 * 1024
"""Largest reference image file accepted, bytes (20 MiB, as for downloaded references)."""

MAX_FILES: Final = 14
"""Reference images per request (both models take at most 14)."""

MAX_FIELD_BYTES: Final = 256 * 1024
"""Largest text field, bytes (a 45,000-character prompt is at most 180,000 bytes of UTF-8)."""

_CHUNK: Final = 64 * 1024
_FILE_FIELD: Final = "ref"


@dataclass(frozen=True, slots=True)
class Upload:
    """One attached file's bytes."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ImagineForm:
    """The imagine form: text fields (each name once) and the ``ref`` files in order."""

    fields: dict[str, str]
    files: tuple[Upload, ...]


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.3g} MiB"


async def _read_capped(part: BodyPartReader, limit: int) -> bytes | None:
    """The part's bytes, or None as soon as they pass ``limit`` (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def read_imagine_form(
    request: web.Request,
    *,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_files: int = MAX_FILES,
    max_field_bytes: int = MAX_FIELD_BYTES,
) -> ImagineForm:
    """Stream the multipart body, stopping at the first limit passed.

    Args:
        request: a ``multipart/form-data`` POST.
        max_file_bytes: per ``ref`` file, bytes.
        max_files: ``ref`` files at most.
        max_field_bytes: per text field, bytes.

    Raises:
        InvalidRequest: not multipart, a field repeated, too long or not UTF-8, or too
            many files (field ``references``).
        ReferenceImageError: a file over ``max_file_bytes`` (with its index).
    """
    if request.content_type != "multipart/form-data":
        raise InvalidRequest("request", "send the form as multipart/form-data")
    declared = request.content_length
    total_limit = max_files * max_file_bytes + 16 * max_field_bytes
    if declared is not None and declared > total_limit:
        raise InvalidRequest(
            "references",
            f"the upload is {_mib(declared)}; the limit is {max_files} files of "
            f"{_mib(max_file_bytes)} each",
            (f"0..{max_files} files", f"up to {_mib(max_file_bytes)} each"),
        )
    reader = await request.multipart()
    fields: dict[str, str] = {}
    files: list[Upload] = []
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise InvalidRequest("request", "nested multipart bodies are not accepted")
        name = part.name or ""
        if name == _FILE_FIELD and part.filename is not None:
            index = len(files)
            data = await _read_capped(part, max_file_bytes)
            if data is None:
                raise ReferenceImageError(
                    f"{part.filename or 'the file'} is larger than the limit of "
                    f"{_mib(max_file_bytes)}",
                    index,
                )
            if not data and not part.filename:
                continue  # an empty file input
            if index >= max_files:
                raise InvalidRequest(
                    "references",
                    f"at most {max_files} reference images can be attached",
                    (f"0..{max_files}",),
                )
            files.append(Upload(data))
            continue
        raw = await _read_capped(part, max_field_bytes)
        if raw is None:
            raise InvalidRequest(name, f"{name} is longer than {max_field_bytes:,} bytes")
        if name in fields:
            raise InvalidRequest(name, f"{name} was given twice")
        try:
            fields[name] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(name, f"{name} is not UTF-8 text") from None
    return ImagineForm(fields, tuple(files))
