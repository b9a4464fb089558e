"""Per-key rate limits: a fixed one-minute window counted in the cache (Redis in production, so every process
counts together). Answers carry RateLimit-Limit / -Remaining / -Reset and RateLimit-Policy (the IETF httpapi
draft's fields); a refused request also Retry-After."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)
WINDOW = 60


@dataclass(frozen=True)
class RateState:
    limit: int
    remaining: int
    reset: int  # seconds until the window ends
    allowed: bool

    def headers(self) -> dict[str, str]:
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
            "RateLimit-Policy": f"{self.limit};w={WINDOW}",
        }
        if not self.allowed:
            out["Retry-After"] = str(self.reset)
        return out


def hit(key_id: int) -> RateState:
    limit = settings.API_RATE_LIMIT_PER_MINUTE
    now = time.time()
    window = int(now // WINDOW)
    reset = max(1, int((window + 1) * WINDOW - now))
    name = f"api-rate:{key_id}:{window}"
    try:
        cache.add(name, 0, timeout=WINDOW + 5)
        count = int(cache.incr(name))
    except Exception:  # noqa: BLE001 - a cache outage must not take the API down
        log.warning("rate-limit cache unavailable; request allowed", exc_info=True)
        return RateState(limit=limit, remaining=limit, reset=reset, allowed=True)
    return RateState(limit=limit, remaining=max(0, limit - count), reset=reset, allowed=count <= limit)
