"""A failed edit is retried at most once (issue 13 item 6): each retry is a charged job, so two staff clicks (or
four racing admin requests) must not bill the user twice. Real PostgreSQL, one connection per thread."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from editor.models import CreditAccount, CreditEntry, EditJob
from editor.services.credits import credits_ledger_sum
from editor.services.edit_commands import EditJobRefused, edit_job_retry, edit_job_submit
from editor.services.job_state import edit_job_mark_failed
from tests.support.fixtures import purge_broker


def _failed_job(user: Any, photo: Any) -> EditJob:
    job = edit_job_submit(user=user, photo=photo, prompt="a teal shirt", clothing="topwear")
    edit_job_mark_failed(job_id=job.pk, error_code="provider_failed", error_detail="Blocked content")
    job.refresh_from_db()
    return job


@pytest.mark.django_db(transaction=True)
def test_four_concurrent_retries_of_one_failed_edit_make_one_job_and_one_charge(
    funded_user: Any, make_photo: Any, make_user: Any
) -> None:
    assert connection.vendor == "postgresql"
    user = funded_user(5)
    failed = _failed_job(user, make_photo(user))
    staff = [make_user(is_staff=True) for _ in range(4)]
    barrier = threading.Barrier(4)
    retried: list[str] = []
    refused: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def retry(staff_user: Any) -> None:
        try:
            barrier.wait()
            job = edit_job_retry(job=failed, staff_user=staff_user)
            with lock:
                retried.append(str(job.pk))
        except EditJobRefused as exc:
            with lock:
                refused.append(exc.message)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=retry, args=(member,)) for member in staff]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    purge_broker()
    assert not errors, errors
    retries = EditJob.objects.filter(source_job=failed)
    assert retries.count() == 1 and len(retried) == 1
    assert refused == ["This edit was already retried."] * 3
    charges = CreditEntry.objects.filter(job__in=retries, kind=CreditEntry.Kind.CHARGE)
    assert charges.count() == 1
    # 5 credits, the failed edit charged and refunded, one retry charged.
    assert CreditAccount.objects.get(user=user).balance == 4 == credits_ledger_sum(user_id=user.pk)


@pytest.mark.django_db(transaction=True)
def test_a_retry_is_refused_once_the_edit_was_retried_even_after_the_retry_failed_too(
    funded_user: Any, make_photo: Any, make_user: Any
) -> None:
    user = funded_user(5)
    failed = _failed_job(user, make_photo(user))
    staff_user = make_user(is_staff=True)
    first = edit_job_retry(job=failed, staff_user=staff_user)
    with pytest.raises(EditJobRefused, match="already retried"):
        edit_job_retry(job=failed, staff_user=staff_user)
    edit_job_mark_failed(job_id=first.pk, error_code="provider_failed", error_detail="Blocked again")
    with pytest.raises(EditJobRefused, match="already retried"):
        edit_job_retry(job=failed, staff_user=staff_user)
    # The retry is a failed edit of its own: it may be retried once in turn.
    second = edit_job_retry(job=first, staff_user=staff_user)
    assert second.source_job_id == first.pk
    purge_broker()
    assert EditJob.objects.filter(owner=user).count() == 3
    assert CreditAccount.objects.get(user=user).balance == 4 == credits_ledger_sum(user_id=user.pk)
