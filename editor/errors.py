"""The one refusal type: whatever a command, a service or a form-backed upload refuses raises a `Refused`.

Views catch this one type and show `message` as it is (it is written for the person); `field` says which form
field it is about (None: the form as a whole).
"""

from __future__ import annotations


class Refused(Exception):
    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field
