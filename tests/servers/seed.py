"""Seed and inspect a site server's database from a subprocess (the server runs in its own process).

    python -m tests.servers.seed users N CREDITS   -> JSON [{"email", "password", "photo"}, ...]
    python -m tests.servers.seed money             -> JSON {email: {"balance", "ledger", "jobs"}}
"""
from __future__ import annotations

import io
import json
import sys

import django

django.setup()

from allauth.account.models import EmailAddress  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.files.base import ContentFile  # noqa: E402
from django.db.models import Sum  # noqa: E402
from PIL import Image  # noqa: E402

from editor.models import CreditAccount, CreditEntry, EditJob, Photo  # noqa: E402
from editor.services.credits import credits_grant  # noqa: E402

PASSWORD = "a-Strong-pass-42"


def png(side: int = 512) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), (180, 60, 60)).save(out, format="PNG")
    return out.getvalue()


def users(count: int, credits: int) -> list[dict[str, str]]:
    made = []
    content = png()
    for n in range(count):
        email = f"parallel{n}@example.com"
        user = get_user_model().objects.create_user(username=f"parallel{n}", email=email, password=PASSWORD)
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        credits_grant(user=user, amount=credits, reason="test credits")
        photo = Photo(owner=user, size_bytes=len(content), original_name="photo.png")
        photo.image.save("photo.png", ContentFile(content), save=False)
        photo.width = photo.height = 512
        photo.save()
        made.append({"email": email, "password": PASSWORD, "photo": str(photo.pk)})
    return made


def money() -> dict[str, dict[str, int]]:
    report = {}
    for user in get_user_model().objects.filter(username__startswith="parallel"):
        report[user.email] = {
            "balance": CreditAccount.objects.get(user=user).balance,
            "ledger": CreditEntry.objects.filter(user=user).aggregate(total=Sum("amount"))["total"] or 0,
            "jobs": EditJob.objects.filter(owner=user).count(),
        }
    return report


if __name__ == "__main__":
    if sys.argv[1] == "users":
        print(json.dumps(users(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        print(json.dumps(money()))
