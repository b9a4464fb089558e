"""The words for a job's progress, defined once: the provider's statuses, the phases the page shows (with their
labels) and the progress bar's estimate. The job page hands the bar's constants to static/js/job.js."""

from __future__ import annotations

import enum

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

# The bar: 2 % before the provider has the job, then 5 % + 90 % of running time / expected time, never above 95 %
# before the end (an overdue job creeps towards it), 97 % while saving. job.js advances it between polls with the
# same numbers (bar_constants()).
FRACTION_BEFORE_SUBMIT = 0.02
FRACTION_START = 0.05
FRACTION_SPAN = 0.9
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


def running_fraction(*, running_seconds: float, expected_seconds: float) -> float:
    """The estimate while the provider works on the job."""
    if expected_seconds <= 0:
        return 0.5
    return min(FRACTION_CAP, FRACTION_START + FRACTION_SPAN * running_seconds / expected_seconds)


def bar_constants() -> dict[str, float]:
    """What static/js/job.js needs to move the bar between polls."""
    return {"start": FRACTION_START, "span": FRACTION_SPAN, "cap": FRACTION_CAP}
