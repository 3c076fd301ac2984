"""Length-prefixed JSON frames over a pipe, between the parent and a session process.

JSON and not pickle on purpose: the session runs untrusted code, and unpickling what it sends would
hand that code the parent process. The parent reads with a small `max_bytes` (replies are capped)
and validates what it gets against a schema (sandbox.py). `truncate` is the cut with a marker that
both sides apply to text. Nothing here imports pydantic: the zygote and the sessions load this module.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 64 << 20
TRUNCATION_MARKER = "…[truncated {n} more characters]"


def truncate(text: str, max_chars: int) -> str:
    """Cut `text` to `max_chars`, saying how much was dropped so the reader knows it is partial."""
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + "\n" + TRUNCATION_MARKER.format(n=len(text) - max_chars)


class FrameError(Exception):
    """The other end closed the pipe or sent garbage."""


class FrameTimeout(FrameError):
    """No complete frame arrived before the deadline."""


class FrameTooLarge(FrameError):
    """The header announced more bytes than the reader accepts; the stream cannot be trusted after it."""


def write_frame(fd: int, message: dict[str, Any]) -> None:
    body = json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass")
    data = memoryview(HEADER.pack(len(body)) + body)
    while data:
        data = data[os.write(fd, data):]


def read_frame(fd: int, deadline: float | None = None, max_bytes: int = MAX_FRAME_BYTES) -> dict[str, Any]:
    """Read one frame; `deadline` is a `time.monotonic()` value (None waits forever)."""
    (size,) = HEADER.unpack(_read_exactly(fd, HEADER.size, deadline))
    if size > max_bytes:
        raise FrameTooLarge(f"a reply of {size} bytes exceeds the {max_bytes}-byte limit")
    try:
        message = json.loads(_read_exactly(fd, size, deadline).decode("utf-8", "surrogatepass"))
    except ValueError as exc:
        raise FrameError(f"frame is not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise FrameError(f"frame is a {type(message).__name__}, expected an object")
    return message


def _read_exactly(fd: int, n: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    while n:
        if deadline is not None:
            wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if not poller.poll(wait_ms):
                raise FrameTimeout("no reply before the deadline")
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise FrameError("pipe closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)
