"""The site's own name and domain (SITE_NAME, SITE_DOMAIN) in django.contrib.sites' row, which allauth's emails
read ("Hello from ...", the subject prefix). Without this the row keeps Django's default, example.com."""
from __future__ import annotations

from django.conf import settings
from django.contrib.sites.models import Site


def site_sync_from_settings(*, using: str = "default") -> Site:
    """Write SITE_NAME and SITE_DOMAIN into the row SITE_ID names (run after every migrate and flush)."""
    site, _ = Site.objects.using(using).update_or_create(
        pk=settings.SITE_ID, defaults={"name": settings.SITE_NAME, "domain": settings.SITE_DOMAIN}
    )
    Site.objects.clear_cache()
    return site
