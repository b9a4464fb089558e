"""The gallery's live tiles: the states of the edits a page lists, for one cheap poll per page (not per tile).

One query, the owner's rows only (ids of someone else's edits are simply left out), three narrow columns.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.urls import reverse

from editor.models import EditJob
from editor.selectors.gallery import parse_uuid

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

# At most the largest gallery page (GALLERY_PAGE_SIZES) is asked about at once.
MAX_IDS = 96

# What a tile's badge says for each state (the gallery template says the same).
TILE_LABELS: dict[str, str] = {
    EditJob.State.CREATED: "In progress",
    EditJob.State.SUBMITTED: "In progress",
    EditJob.State.SUCCEEDED: "Done",
    EditJob.State.FAILED: "Failed · not charged",
    EditJob.State.EXPIRED: "Timed out · not charged",
}


def gallery_tile_states(*, user: AbstractBaseUser, ids: list[str]) -> dict[str, dict[str, Any]]:
    """{job id: {state, label, final, thumb}} for the user's own edits among `ids` (others and bad ids omitted).
    `thumb` is the result thumbnail's URL once there is one (the owner-checked view; it redirects to S3)."""
    wanted = [pk for pk in (parse_uuid(value) for value in ids[:MAX_IDS]) if pk is not None]
    if not wanted:
        return {}
    rows = EditJob.objects.filter(owner_id=user.pk, pk__in=wanted).values_list("pk", "state", "result_thumbnail")
    return {
        str(pk): {
            "state": state,
            "label": TILE_LABELS.get(state, state),
            "final": state in EditJob.FINAL_STATES,
            "thumb": reverse("editor:job_thumb", kwargs={"pk": pk}) if thumb else "",
        }
        for pk, state, thumb in rows
    }
