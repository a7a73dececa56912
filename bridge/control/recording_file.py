"""A recording as an HTTP answer: Starlette's :class:`FileResponse` with RFC 9110's range rules.

A ``Range`` in a unit other than ``bytes``, or a ``bytes`` range that is not well formed, is
ignored (RFC 9110 §14.2: the whole file, 200; Starlette answers 400 text/plain); one that no byte
of the file satisfies is 416 with ``Content-Range: bytes */<size>`` in OpenAI's error shape.
"""

from __future__ import annotations

from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import Headers
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable
from starlette.types import Receive, Scope, Send

from bridge.http_errors import error_body

__all__ = ["RecordingFile"]


class RecordingFile(FileResponse):
    """A file served with the range rules above; give it the file's ``stat_result`` (without
    one, Starlette's own rules apply)."""

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        try:
            return super()._parse_range_header(http_range, file_size)
        except MalformedRangeHeader:
            return []  # ignored: the whole file
        except RangeNotSatisfiable:
            # 416 only when no range is satisfiable (RFC 9110 §15.5.17); Starlette refuses
            # the whole set for one range past the end: serve the ranges that are in it
            _, _, spec = http_range.partition("=")
            ranges = cls._parse_ranges(spec, file_size)
            kept = [f"{start}-{end - 1}" for start, end in ranges if 0 <= start < file_size]
            if not kept or len(kept) == len(ranges):
                raise
            return super()._parse_range_header("bytes=" + ",".join(kept), file_size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        http_range, if_range = headers.get("range"), headers.get("if-range")
        size = self.stat_result.st_size if self.stat_result is not None else 0
        if (
            self.stat_result is not None
            and http_range is not None
            and (if_range is None or self._should_use_range(if_range))
        ):
            try:
                self._parse_range_header(http_range, size)
            except RangeNotSatisfiable:
                message = f"The range is not satisfiable: the recording has {size} bytes."
                body = error_body(message, code="range_not_satisfiable", param="range")
                refusal = JSONResponse(
                    body, status_code=416, headers={"Content-Range": f"bytes */{size}"}
                )
                await refusal(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
