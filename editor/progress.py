"""The words for a job's progress, defined once: the provider's statuses, the phases the page shows (with their
labels) and the progress bar's estimate. The job page hands the bar's constants to static/js/job.js."""

from __future__ import annotations

import enum
import math

from editor.models import EditJob


class ProviderStatus(enum.StrEnum):
    """What the provider says about a submitted job (Segmind's protocol)."""

    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class Phase(enum.StrEnum):
    """What the person sees."""

    QUEUED = "queued"
    PROCESSING = "processing"
    SAVING = "saving"
    DONE = "done"
    FAILED = "failed"
    EXPIRED = "expired"


# EditJob.error_code of an edit the provider's content filter refused: the person's photo caused it (the message
# says so, staff cannot retry it, it is no provider error).
ERROR_CONTENT_BLOCKED = "content_blocked"
CONTENT_BLOCKED_MESSAGE = (
    "Our content filter does not allow this photo (content not allowed), so it was not edited. "
    "You were not charged. Please choose another photo."
)

# EditJob.error_code of an edit the provider refused for this photo or prompt (no person, garment not visible, no
# colour named): the gate's own words are the message. Like a content block it is the person's input, not a fault.
ERROR_REFUSED = "edit_refused"
# Failures caused by what the person sent: the dashboard keeps them out of the provider's success rate.
USER_CAUSED_ERRORS = frozenset({ERROR_CONTENT_BLOCKED, ERROR_REFUSED})

RUNNING_PHASES = (Phase.QUEUED, Phase.PROCESSING, Phase.SAVING)
FAILED_PHASES = (Phase.FAILED, Phase.EXPIRED)

PHASE_LABELS = {
    Phase.QUEUED: "Waiting in the queue",
    Phase.PROCESSING: "Editing your photo",
    Phase.SAVING: "Saving the result",
    Phase.DONE: "Done",
    Phase.FAILED: "The edit failed",
    Phase.EXPIRED: "The edit timed out",
}

# The bar never shows 100 % before the end (an overdue edit creeps towards the cap), 97 % while saving.
FRACTION_CAP = 0.95
FRACTION_SAVING = 0.97


def phase_of(*, state: str, provider_status: str) -> Phase:
    if state == EditJob.State.SUCCEEDED:
        return Phase.DONE
    if state == EditJob.State.FAILED:
        return Phase.FAILED
    if state == EditJob.State.EXPIRED:
        return Phase.EXPIRED
    if state == EditJob.State.SUBMITTED:
        if provider_status == ProviderStatus.COMPLETED:
            return Phase.SAVING
        if provider_status == ProviderStatus.PROCESSING:
            return Phase.PROCESSING
    return Phase.QUEUED


# The bar over the whole wait (submit to stored): from WAIT_START it reaches WAIT_LATE when the usual wait has
# passed, then creeps towards FRACTION_CAP (never a jump, never 100 % before the end). job.js uses the same numbers.
WAIT_START = 0.03
WAIT_LATE = 0.9


def wait_fraction(*, elapsed_seconds: float, expected_seconds: float) -> float:
    """The bar for an edit waited on for `elapsed_seconds` when edits usually take `expected_seconds`."""
    if expected_seconds <= 0:
        return WAIT_START
    ratio = max(0.0, elapsed_seconds) / expected_seconds
    if ratio <= 1:
        return WAIT_START + (WAIT_LATE - WAIT_START) * ratio
    return WAIT_LATE + (FRACTION_CAP - WAIT_LATE) * (1 - math.exp(-(ratio - 1)))


def late_reason(*, phase: Phase, edits_ahead: int, provider_errors: int) -> str:
    """Why an edit is taking longer than usual, when we know (words for the person)."""
    if provider_errors:
        return "the editing service is not answering right now; we keep trying"
    if phase == Phase.QUEUED and edits_ahead:
        return f"{edits_ahead} edit{'' if edits_ahead == 1 else 's'} ahead of yours"
    if phase == Phase.PROCESSING:
        return "the editing service is slower than usual right now"
    return ""


def bar_constants() -> dict[str, float]:
    """What static/js/job.js needs to move the bar between polls (wait_fraction's numbers)."""
    return {"start": WAIT_START, "late": WAIT_LATE, "cap": FRACTION_CAP}
