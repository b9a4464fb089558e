"""The one size-capped read: request bodies and image downloads both stop at their limit, never buffer past it."""

from __future__ import annotations

from collections.abc import AsyncIterable


class TooLarge(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


async def read_capped(chunks: AsyncIterable[bytes], *, limit: int, declared: str | None = None) -> bytes:
    """Join `chunks`, raising TooLarge as soon as they pass `limit` bytes (or at once if `declared`, a
    Content-Length, already does)."""
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise TooLarge(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise TooLarge(limit)
        parts.append(chunk)
    return b"".join(parts)
