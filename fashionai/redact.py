"""URLs fit for a log line: no query string (presigned signatures, tokens) and no userinfo (passwords).

Shared by the service and the site's log filters (fashionsite/logging.py), so it imports the standard library only:
the site may import it without pulling anything of the engine, and it knows nothing of Django.
"""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"

# An absolute URL inside free text: scheme, "://", then up to whitespace or a quote; trailing punctuation (the
# colon or full stop of the sentence around it) is left outside.
_URL_RE = re.compile(r"""\b[a-z][a-z0-9+.-]*://[^\s"'<>`]*[^\s"'<>`.,;:!)]""", re.IGNORECASE)


def redact_url(url: str) -> str:
    """`scheme://user:pw@host:port/path?query#frag` -> `scheme://[REDACTED]@host:port/path?[REDACTED]`.

    What is left (scheme, host, port, path) says which object was fetched without letting anyone fetch it again.
    Parsed by hand, not with urlsplit: a malformed URL must be redacted too, and redacting twice changes nothing.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    userinfo = f"{REDACTED}@" if "@" in netloc else ""
    cut = min((i for i in (tail.find(c) for c in "?#") if i >= 0), default=len(tail))
    after = f"{tail[cut]}{REDACTED}" if cut < len(tail) else ""
    return f"{scheme}://{userinfo}{netloc.rpartition('@')[2]}{tail[:cut]}{after}"


def redact_urls(text: str) -> str:
    """Every absolute URL in `text` through `redact_url`; the rest of the text unchanged."""
    if "://" not in text:
        return text
    return _URL_RE.sub(lambda match: redact_url(match.group(0)), text)
