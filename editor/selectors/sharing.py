"""Reads for share links: the public page's edit (by token only), and a user's own links."""
from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Q
from django.utils import timezone

from editor.models import EditJob, ShareLink, SiteSwitches

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def sharing_enabled() -> bool:
    switches = SiteSwitches.objects.filter(pk=1).first()
    return switches.sharing_enabled if switches else True


def live_share_link(*, token: str) -> ShareLink | None:
    """The link behind a public URL, or None (404) when it is revoked, expired, its edit gone or sharing is off."""
    if not token or not sharing_enabled():
        return None
    return (
        ShareLink.objects.select_related("job", "job__photo")
        .filter(token=token, revoked_at__isnull=True, job__state=EditJob.State.SUCCEEDED)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        .first()
    )


def share_links_for_job(*, user: AbstractBaseUser, job: EditJob) -> list[ShareLink]:
    return list(ShareLink.objects.filter(job=job, job__owner_id=user.pk, revoked_at__isnull=True))
