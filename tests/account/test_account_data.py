"""Download my data and delete my account: the ZIP holds every file of the user's and nothing of anyone else's;
after deletion no object of the user's is left in the store (listed) and no personal row in the database
(queried), accounting's ledger lines stay anonymised, a running edit is cancelled and refunded."""
from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest

from tests.account.conftest import personal_data_left, stored_names

pytestmark = pytest.mark.django_db(transaction=True)


def export_zip(export: Any) -> zipfile.ZipFile:
    from editor import storage

    return zipfile.ZipFile(io.BytesIO(storage.read(export.file_name)))


def test_the_export_holds_every_file_of_the_user_and_nothing_of_anyone_else(
    client: Any, user_with_data: Any, mailoutbox: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from editor import storage
    from editor.models import DataExport
    from editor.services.account_data import data_export_build

    mine, theirs = user_with_data(photos=3), user_with_data(photos=2)
    client.force_login(mine.user)
    assert client.post("/profile/data/export/").status_code == 302
    export = DataExport.objects.get(user=mine.user)
    assert data_export_build(export_id=export.pk) is True
    assert data_export_build(export_id=export.pk) is False  # done: a redelivered message does nothing
    again = client.post("/profile/data/export/", follow=True).content.decode()
    assert "a few minutes ago" in again and DataExport.objects.filter(user=mine.user).count() == 1
    export.refresh_from_db()
    assert export.state == "ready" and export.expires_at is not None

    archive = export_zip(export)
    prefix = storage.user_content_prefix(mine.user.pk) + "/"
    mine_stored = {name for name, _ in storage.stored_files(prefix)}
    assert len(mine_stored) == 3 * 4  # per edit: photo, its thumbnail, result, result thumbnail
    files = {name for name in archive.namelist() if name.startswith("files/")}
    assert files == {"files/" + name[len(prefix):] for name in mine_stored}
    for name in mine_stored:
        assert archive.read("files/" + name[len(prefix):]) == storage.read(name)
    assert {"history.json", "history.csv", "ledger.json", "ledger.csv", "purchases.json", "purchases.csv",
            "photos.json", "account.json", "README.txt"} <= set(archive.namelist())
    history = json.loads(archive.read("history.json"))
    assert sorted(job["prompt"] for job in history) == sorted(j.prompt for j in [*mine.jobs, mine.running])
    assert all(job["result"] in files for job in history if job["state"] == "succeeded")
    ledger = json.loads(archive.read("ledger.json"))
    assert sum(row["amount"] for row in ledger) == 20 + 5 - 4
    assert "kind,amount" in archive.read("ledger.csv").decode().replace("created_at,", "")
    everything = b"".join(archive.read(name) for name in archive.namelist())
    assert theirs.marker.encode() not in everything and theirs.user.email.encode() not in everything
    assert f"users/{theirs.user.pk}/".encode() not in everything

    [mail] = mailoutbox
    assert mail.to == [mine.user.email] and f"/profile/data/export/{export.token}/" in mail.body
    assert client.get(f"/profile/data/export/{export.token}/").status_code in (200, 302)
    client.force_login(theirs.user)
    assert client.get(f"/profile/data/export/{export.token}/").status_code == 404


def test_deleting_an_account_leaves_no_file_and_no_personal_row(
    client: Any, user_with_data: Any, settings: Any
) -> None:
    from editor.models import AccountDeletion, CreditEntry, EditJob, Purchase
    from editor.services.account_data import account_deletion_run, data_export_build, data_export_request

    gone, kept = user_with_data(photos=3), user_with_data(photos=2)
    data_export_build(export_id=data_export_request(user=gone.user).pk)
    client.force_login(gone.user)
    session_key = client.session.session_key
    kept_files = stored_names(kept.user.pk)
    assert len(stored_names(gone.user.pk)) == 3 * 4 + 2  # + the raw direct upload and the export ZIP

    page = client.get("/profile/delete/")
    assert page.status_code == 200
    wrong = client.post("/profile/delete/", {"password": "not-it", "confirm": "on"})
    assert wrong.status_code == 400 and AccountDeletion.objects.count() == 0
    unconfirmed = client.post("/profile/delete/", {"password": gone.user.raw_password})
    assert unconfirmed.status_code == 400 and AccountDeletion.objects.count() == 0
    response = client.post("/profile/delete/", {"password": gone.user.raw_password, "confirm": "on"})
    assert response.status_code == 302 and response["Location"] == "/account-deleted/"
    assert client.get("/gallery/").status_code == 302  # signed out
    deletion = AccountDeletion.objects.get(user_id=gone.user.pk)

    # The running edit is stopped first (and refunded), then everything goes.
    assert account_deletion_run(deletion_id=deletion.pk) is True
    assert account_deletion_run(deletion_id=deletion.pk) is False
    deletion.refresh_from_db()
    assert deletion.state == "done" and deletion.files_deleted == 3 * 4 + 2
    assert stored_names(gone.user.pk) == set()
    assert personal_data_left(gone) == []
    assert not EditJob.objects.filter(pk=gone.running.pk).exists()
    # Accounting keeps the money: the purchase and its ledger line, with nobody's name on them.
    purchase = Purchase.objects.get(pk=gone.purchase.pk)
    assert purchase.user_id is None and purchase.status == "paid"
    [entry] = CreditEntry.objects.filter(external_id=purchase.checkout_session_id)
    assert entry.user_id is None and entry.kind == "purchase" and entry.reason == ""
    assert not CreditEntry.objects.filter(user_id=gone.user.pk).exists()
    from django.contrib.sessions.models import Session
    assert not Session.objects.filter(session_key=session_key).exists()
    # Nobody else lost anything.
    assert stored_names(kept.user.pk) == kept_files
    assert EditJob.objects.filter(owner=kept.user).count() == 3
    assert personal_data_left(kept) != []


def test_a_running_edit_is_cancelled_and_refunded_before_the_rows_go(user_with_data: Any) -> None:
    from editor.models import CreditEntry
    from editor.services.job_state import edit_jobs_cancel_for_deleted_account

    data = user_with_data(photos=1)
    assert edit_jobs_cancel_for_deleted_account(owner_id=data.user.pk) == 1
    assert edit_jobs_cancel_for_deleted_account(owner_id=data.user.pk) == 0
    data.running.refresh_from_db()
    assert data.running.state == "failed" and data.running.error_code == "cancelled"
    assert CreditEntry.objects.filter(job=data.running, kind="refund").count() == 1


def test_staff_run_both_for_a_user(admin_client: Any, user_with_data: Any) -> None:
    from editor.models import AccountDeletion, DataExport

    data = user_with_data(photos=1)
    admin_client.post("/admin/auth/user/", {"action": "export_user_data", "_selected_action": [data.user.pk]})
    assert DataExport.objects.filter(user=data.user, state="pending").count() == 1
    admin_client.post("/admin/auth/user/", {"action": "delete_user_data", "_selected_action": [data.user.pk]})
    deletion = AccountDeletion.objects.get(user_id=data.user.pk)
    assert deletion.by_staff and deletion.state == "pending"
    data.user.refresh_from_db()
    assert data.user.is_active is False
