"""Personal API keys: create (the key is returned once), check, revoke.

A key is `fai_<prefix>_<secret>`: the prefix (8 hex characters, unique) finds the row, the SHA-256 of the whole key
is compared in constant time. The secret has 192 random bits, so a fast hash is enough (no password stretching:
nothing to brute-force), as GitHub and Stripe keys are kept.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from editor.api.models import ApiKey, ApiScope
from editor.errors import Refused

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

KEY_PREFIX = "fai_"
# last_used_at is written at most this often per key: a busy client must not turn every read into a write.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class ApiKeyRefused(Refused):
    pass


@dataclass(frozen=True)
class NewApiKey:
    key: ApiKey
    plaintext: str  # shown once, never stored


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def split_key(plaintext: str) -> str | None:
    """The lookup prefix of a well-formed key, else None."""
    if not plaintext.startswith(KEY_PREFIX):
        return None
    prefix, sep, secret = plaintext[len(KEY_PREFIX):].partition("_")
    if not sep or len(prefix) != 8 or not secret or len(plaintext) > 100:
        return None
    return prefix


def api_key_create(*, user: AbstractBaseUser, name: str, scopes: list[str]) -> NewApiKey:
    name = " ".join((name or "").split())
    if not name:
        raise ApiKeyRefused("Give the key a name, so you can tell it from your others.", field="name")
    if len(name) > 100:
        raise ApiKeyRefused("Keep the name under 100 characters.", field="name")
    chosen = sorted({s for s in scopes})
    if not chosen or any(s not in ApiScope.values for s in chosen):
        raise ApiKeyRefused("Choose at least one scope: edits:read, edits:write.", field="scopes")
    if ApiKey.objects.filter(user_id=user.pk, revoked_at__isnull=True).count() >= settings.API_KEYS_PER_USER:
        raise ApiKeyRefused(f"You have {settings.API_KEYS_PER_USER} active keys; revoke one first.")
    for _ in range(5):
        prefix = secrets.token_hex(4)
        plaintext = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(24)}"
        try:
            with transaction.atomic():
                key = ApiKey.objects.create(
                    user_id=user.pk, name=name, prefix=prefix, key_hash=hash_key(plaintext), scopes=chosen
                )
        except IntegrityError:  # a prefix collision (1 in 4 billion): draw again
            continue
        return NewApiKey(key=key, plaintext=plaintext)
    raise ApiKeyRefused("Could not make a key; please try again.")


def api_key_authenticate(*, plaintext: str) -> ApiKey | None:
    """The active key this plaintext is, with its user loaded, or None. Records when it was last used."""
    prefix = split_key(plaintext)
    if prefix is None:
        return None
    key = ApiKey.objects.select_related("user").filter(prefix=prefix, revoked_at__isnull=True).first()
    if key is None or not hmac.compare_digest(key.key_hash, hash_key(plaintext)) or not key.user.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or key.last_used_at < now - LAST_USED_RESOLUTION:
        # Conditional, so concurrent requests of one key write it once.
        ApiKey.objects.filter(pk=key.pk, last_used_at=key.last_used_at).update(last_used_at=now)
        key.last_used_at = now
    return key


def api_key_revoke(*, key_id: int, user: AbstractBaseUser) -> bool:
    """The owner revokes one of their keys; another user's key is simply not found (False)."""
    return ApiKey.objects.filter(pk=key_id, user_id=user.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by_id=user.pk
    ) == 1


def api_keys_revoke_by_staff(*, key_ids: list[int], staff_user: AbstractBaseUser) -> int:
    """Staff revoke keys (the admin action checks the permission first). Returns how many were active."""
    if not getattr(staff_user, "is_staff", False):
        raise ApiKeyRefused("Only staff can revoke other people's keys.")
    return ApiKey.objects.filter(pk__in=key_ids, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by_id=staff_user.pk
    )
