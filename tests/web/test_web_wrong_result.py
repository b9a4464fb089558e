"""Issue 14 item 15: "this result is wrong" on a finished edit refunds it once (a monthly allowance per user),
records the reason for staff and shows on the dashboard; exact under concurrent clicks."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.test import Client
from django.urls import reverse

from editor.models import CreditAccount, CreditEntry, EditJob, WrongResultReport
from editor.services.credits import credits_charge_for_job, credits_ledger_sum
from editor.services.wrong_results import WrongResultRefused, edit_job_report_wrong
from tests.web.helpers import make_job


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def charged_job(user: Any, **kwargs: Any) -> EditJob:
    job = make_job(user, **kwargs)
    with transaction.atomic():
        credits_charge_for_job(job=job)
    return job


def balance(user: Any) -> int:
    return CreditAccount.objects.get(user=user).balance


def refunds(job: EditJob) -> int:
    return CreditEntry.objects.filter(job=job, kind=CreditEntry.Kind.REFUND).count()


@pytest.mark.smoke
@pytest.mark.django_db
def test_reporting_a_finished_edit_refunds_it_once_and_records_the_reason(make_user: Any) -> None:
    user = make_user()
    job = charged_job(user)
    client = client_for(user)
    page = client.get(reverse("editor:job_detail", kwargs={"pk": job.pk})).content.decode()
    assert "This result is wrong" in page and "3 such refunds left this month" in page
    before = balance(user)

    url = reverse("editor:job_report_wrong", kwargs={"pk": job.pk})
    response = client.post(url, {"reason": "broken", "detail": "a flat blue blob over the coat"}, follow=True)
    html = response.content.decode()
    assert "1 credit went back to your balance" in html
    assert 'data-testid="wrong-reported"' in html and 'data-testid="wrong-submit"' not in html
    assert balance(user) == before + 1 == credits_ledger_sum(user_id=user.pk)
    report = WrongResultReport.objects.get(job=job)
    assert (report.reason, report.detail, report.refunded, report.prompt) == (
        "broken", "a flat blue blob over the coat", True, job.prompt)
    job.refresh_from_db()
    assert job.state == EditJob.State.SUCCEEDED  # the edit keeps its result; only the credit came back

    html = client.post(url, {"reason": "other"}, follow=True).content.decode()
    assert "You reported this result already" in html
    assert refunds(job) == 1 and balance(user) == before + 1 and WrongResultReport.objects.count() == 1


@pytest.mark.smoke
@pytest.mark.django_db
def test_the_monthly_allowance_limits_refunds_not_reports(make_user: Any, settings: Any) -> None:
    settings.WRONG_RESULT_REFUNDS_PER_MONTH = 2
    user = make_user()
    jobs = [charged_job(user) for _ in range(3)]
    start = balance(user)
    outcomes = [edit_job_report_wrong(user=user, job=job, reason="wrong_garment") for job in jobs]
    assert [o.refunded_credits for o in outcomes] == [1, 1, 0]
    assert [o.allowance_left for o in outcomes] == [1, 0, 0]
    assert balance(user) == start + 2 == credits_ledger_sum(user_id=user.pk)
    assert WrongResultReport.objects.filter(user=user).count() == 3  # the third is recorded for staff
    assert not WrongResultReport.objects.get(job=jobs[2]).refunded
    page = client_for(user).get(reverse("editor:job_detail", kwargs={"pk": jobs[2].pk})).content.decode()
    assert "no refund: the month" in page


@pytest.mark.smoke
@pytest.mark.django_db
def test_only_the_owners_finished_edits_can_be_reported(make_user: Any) -> None:
    owner, stranger = make_user(), make_user()
    done = charged_job(owner)
    failed = make_job(owner, state=EditJob.State.FAILED, refunded=True)
    running = make_job(owner, state=EditJob.State.SUBMITTED)
    response = client_for(stranger).post(reverse("editor:job_report_wrong", kwargs={"pk": done.pk}),
                                         {"reason": "broken"})
    assert response.status_code == 404
    with pytest.raises(WrongResultRefused):
        edit_job_report_wrong(user=stranger, job=done, reason="broken")
    for job in (failed, running):
        with pytest.raises(WrongResultRefused):
            edit_job_report_wrong(user=owner, job=job, reason="broken")
    with pytest.raises(WrongResultRefused):
        edit_job_report_wrong(user=owner, job=done, reason="not-a-reason")
    assert not WrongResultReport.objects.exists() and refunds(failed) == 1


def _race(calls: list[Any]) -> list[Any]:
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = calls[index]()
        except Exception as exc:  # noqa: BLE001  # the test inspects what each click got
            results[index] = exc
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_clicks_refund_exactly_once(make_user: Any, settings: Any) -> None:
    # Real row locks (SELECT ... FOR UPDATE) need PostgreSQL; the in-memory SQLite test database is one connection.
    assert connection.vendor == "postgresql"
    settings.WRONG_RESULT_REFUNDS_PER_MONTH = 2
    user = make_user()
    same = charged_job(user)
    start = balance(user)
    results = _race([lambda: edit_job_report_wrong(user=user, job=same, reason="broken") for _ in range(6)])
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r.created for r in results) == 1
    assert refunds(same) == 1 and balance(user) == start + 1

    # Different edits at once: the allowance (2, one used) is never overrun.
    others = [charged_job(user) for _ in range(4)]
    start = balance(user)
    results = _race([lambda j=job: edit_job_report_wrong(user=user, job=j, reason="broken") for job in others])
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r.refunded_credits for r in results) == 1
    assert balance(user) == start + 1 == credits_ledger_sum(user_id=user.pk)
    assert WrongResultReport.objects.filter(user=user).count() == 5


@pytest.mark.smoke
@pytest.mark.django_db
def test_a_second_report_row_for_one_edit_is_refused_by_the_database(make_user: Any) -> None:
    user = make_user()
    job = charged_job(user)
    WrongResultReport.objects.create(job=job, user=user, reason="broken", prompt=job.prompt, clothing=job.clothing)
    with pytest.raises(IntegrityError), transaction.atomic():
        WrongResultReport.objects.create(job=job, user=user, reason="other", prompt=job.prompt,
                                         clothing=job.clothing)


@pytest.mark.smoke
@pytest.mark.django_db
def test_reports_show_on_the_staff_dashboard(make_user: Any) -> None:
    user = make_user()
    job = charged_job(user)
    charged_job(user)
    edit_job_report_wrong(user=user, job=job, reason="wrong_place", detail="it recoloured the grass")
    staff = make_user(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_usage"))
    html = client_for(staff).get(reverse("staff_dashboard")).content.decode()
    assert "Results reported wrong" in html
    assert 'data-testid="wrong-reported">1<' in html and "50.0 % of 2 finished edits" in html
    assert "it recoloured the grass" in html and user.email in html


@pytest.mark.django_db
def test_staff_read_the_reports_in_the_admin_with_the_permission_only(make_user: Any) -> None:
    user = make_user()
    edit_job_report_wrong(job=charged_job(user), user=user, reason="wrong_place", detail="it recoloured the sky")
    url = reverse("admin:editor_wrongresultreport_changelist")
    staff = make_user(is_staff=True)
    assert client_for(staff).get(url).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_wrongresultreport"))
    page = client_for(staff).get(url).content.decode()
    assert "It changed the wrong part of the photo" in page and user.email in page
    report = WrongResultReport.objects.get(user=user)
    change = client_for(staff).get(reverse("admin:editor_wrongresultreport_change", args=[report.pk]))
    assert change.status_code == 200 and "it recoloured the sky" in change.content.decode()
    assert "Save" not in change.content.decode()  # read-only: the application writes these rows
