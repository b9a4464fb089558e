"""The gallery of a user's edits and their credits page."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from editor.forms import GalleryFilterForm
from editor.selectors.credits import credits_balance
from editor.selectors.gallery import (
    GALLERY_PAGE_SIZE,
    GALLERY_PAGE_SIZES,
    GalleryFilters,
    credits_ledger_page,
    credits_summary,
    credits_summary_sentence,
    gallery_page,
)
from editor.selectors.payments import credit_account_for, credit_packs_on_sale, receipts
from editor.services.payments import buying_enabled
from editor.types import AuthedRequest


@login_required
@require_GET
def gallery(request: AuthedRequest) -> HttpResponse:
    filters = GalleryFilters.from_query(request.GET)
    try:
        per_page = int(request.GET.get("per_page", GALLERY_PAGE_SIZE))
    except ValueError:
        per_page = GALLERY_PAGE_SIZE
    gallery_ = gallery_page(
        user=request.user, filters=filters, page_number=request.GET.get("page"), per_page=per_page
    )
    page = gallery_.page
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "editor/gallery.html", {
        "page": page,
        "tiles": gallery_.tiles,
        "filters": filters,
        "filter_form": GalleryFilterForm(initial={"q": filters.q, "status": filters.status,
                                                  "clothing": filters.clothing}),
        "page_query": query.urlencode(),
        "per_page": page.paginator.per_page,
        "page_sizes": GALLERY_PAGE_SIZES,
    })


@login_required
@require_GET
def credits(request: AuthedRequest) -> HttpResponse:
    page = credits_ledger_page(user=request.user, page_number=request.GET.get("page"))
    balance = credits_balance(user=request.user)
    summary = credits_summary(user=request.user)
    return render(request, "editor/credits.html", {
        "page": page,
        "balance": balance,
        "summary": summary,
        "summary_sentence": credits_summary_sentence(summary, balance=balance),
        "buying": buying_enabled(),
        "packs": credit_packs_on_sale(),
        "receipts": receipts(user=request.user)[:50],
        "account": credit_account_for(user=request.user),
        "cancelled": request.GET.get("cancelled") == "1",
    })
