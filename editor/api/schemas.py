"""The developer API's documented shapes (OpenAPI 3.1 is generated from these)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Schema
from pydantic import Field


class Problem(Schema):
    """RFC 9457 problem details (media type application/problem+json)."""

    type: str = Field(description="A URI reference naming the kind of problem; see docs/api.md.")
    title: str
    status: int
    detail: str = ""
    instance: str = ""
    code: str = Field("", description="A short machine-readable code, stable across releases.")
    field: str | None = None
    errors: list[dict[str, Any]] | None = None


class EditResult(Schema):
    url: str = Field(description="The edited photo: a presigned URL on S3 storage (expires), else an API path "
                                 "that needs your key.")
    thumbnail_url: str
    presigned: bool
    expires_in_seconds: int | None


class EditCredits(Schema):
    charged: int
    refunded: int


class EditError(Schema):
    code: str
    message: str


class Edit(Schema):
    id: str
    state: Literal["created", "submitted", "succeeded", "failed", "expired"]
    phase: Literal["queued", "processing", "saving", "done", "failed", "expired"]
    progress: float = Field(description="0 to 1, an estimate while running.")
    eta_seconds: float | None = Field(description="Estimated seconds left; null once final.")
    prompt: str
    clothing: Literal["topwear", "bottomwear"]
    photo_id: str
    created_at: datetime
    finished_at: datetime | None
    result: EditResult | None
    credits: EditCredits
    error: EditError | None


class EditPage(Schema):
    data: list[Edit]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next (older) page; null: no more.")


class LedgerEntry(Schema):
    id: int
    kind: str = Field(description="grant, charge, refund, adjust, purchase, clawback (more may come)")
    amount: int
    balance_after: int
    reason: str
    edit_id: str | None
    created_at: datetime


class Credits(Schema):
    balance: int
    data: list[LedgerEntry]
    next_cursor: str | None
