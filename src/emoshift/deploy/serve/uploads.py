"""Reading an upload as it streams: a size limit enforced chunk by chunk, multipart parsed incrementally.

The audio is kept in memory only (a ``bytearray``); no client-supplied name is ever used, as a path or otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from python_multipart.multipart import MultipartParser, parse_options_header

AUDIO_TYPES = ("audio/", "application/octet-stream")
FIELD = "file"


class UploadError(Exception):
    """A bad upload: ``status`` is the HTTP status to answer, ``str(err)`` the plain-words message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def too_large(limit: int) -> UploadError:
    return UploadError(413, f"the upload is larger than the {limit / 1e6:g} MB limit")


class _FilePart:
    """python-multipart callbacks collecting the bytes of the part named ``file``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.found = False
        self._field, self._value = bytearray(), bytearray()
        self._headers: dict[str, bytes] = {}
        self._wanted = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._begin, "on_header_field": self._hfield, "on_header_value": self._hvalue,
            "on_header_end": self._hend, "on_headers_finished": self._hdone, "on_part_data": self._pdata,
        }

    def _begin(self) -> None:
        self._headers, self._wanted = {}, False

    def _hfield(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _hvalue(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _hend(self) -> None:
        self._headers[self._field.decode("latin-1").lower()] = bytes(self._value)
        self._field, self._value = bytearray(), bytearray()

    def _hdone(self) -> None:
        _, opts = parse_options_header(self._headers.get("content-disposition", b""))
        self._wanted = opts.get(b"name") == FIELD.encode() and not self.found
        if self._wanted:
            self.found = True
            # a part typed as something other than audio (text/plain, image/png) is refused as a raw body would be;
            # a part without a type is let through to the decoder, which says whether it is audio
            kind = parse_options_header(self._headers.get("content-type", b""))[0].decode("latin-1").lower()
            if kind and not kind.startswith(AUDIO_TYPES):
                raise UploadError(415, f"unsupported content type {kind} for the '{FIELD}' part: send audio "
                                       "(audio/wav or another audio/* type)")

    def _pdata(self, data: bytes, start: int, end: int) -> None:
        if self._wanted:
            self.data += data[start:end]
            if len(self.data) > self.limit:
                raise too_large(self.limit)


async def read_upload(content_type: str, content_length: str | None, stream: AsyncIterator[bytes], limit: int) -> bytes:
    """The audio bytes of a multipart field ``file`` or of a raw audio body; UploadError on bad input."""
    if content_length is not None and content_length.isdigit() and int(content_length) > limit + 64 * 1024:
        raise too_large(limit)  # refused from the header, before a byte of the body is read
    ctype, opts = parse_options_header(content_type or "")
    kind = ctype.decode("latin-1").lower()
    if kind == "multipart/form-data":
        boundary = opts.get(b"boundary")
        if not boundary:
            raise UploadError(400, "multipart upload without a boundary")
        part = _FilePart(limit)
        parser = MultipartParser(boundary, part.callbacks(), max_size=limit + 64 * 1024)  # type: ignore[arg-type]
        total = 0
        async for chunk in stream:
            total += len(chunk)
            if total > limit + 64 * 1024:
                raise too_large(limit)
            try:
                parser.write(chunk)
            except UploadError:
                raise
            except Exception:  # python-multipart's own parse errors
                raise UploadError(400, "malformed multipart upload") from None
        parser.finalize()
        if not part.found:
            raise UploadError(400, f"multipart upload without a '{FIELD}' field")
        data = part.data
    elif kind.startswith(AUDIO_TYPES):
        data = bytearray()
        async for chunk in stream:
            data += chunk
            if len(data) > limit:
                raise too_large(limit)
    else:
        shown = kind or "none"
        raise UploadError(415, f"unsupported content type {shown}: send multipart/form-data with a 'file' field, "
                               "or the audio itself as audio/wav (or another audio/* type)")
    if not data:
        raise UploadError(400, "the upload is empty")
    return bytes(data)
