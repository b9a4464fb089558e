"""Share links' bookkeeping (the owner's commands, create and revoke, are in edit_commands.py)."""
from __future__ import annotations

from django.db.models import F

from editor.models import ShareLink


def share_link_count_view(*, link: ShareLink) -> None:
    # One UPDATE with F(): concurrent views all count.
    ShareLink.objects.filter(pk=link.pk).update(view_count=F("view_count") + 1)
