"""The export and the deletion run as Celery tasks on a real worker; a deletion survives the worker being killed
(SIGKILL, the whole process group) half way: a new worker finishes it, and nothing of the user's is left."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.account.conftest import personal_data_left, stored_names

pytestmark = pytest.mark.django_db(transaction=True)

WORKER_ENV = {
    "ACCOUNT_DELETION_THROTTLE_SECONDS": "0.4",  # ~10 s for this account's files: room to kill it half way
    "ACCOUNT_TASK_LEASE_SECONDS": "3",
    "ACCOUNT_SWEEP_INTERVAL_SECONDS": "1",
}


def wait_for(check: Callable[[], bool], *, timeout: float, what: str, worker: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n--- worker log ---\n{worker.log()[-4000:]}")


def test_the_export_is_made_by_the_worker_and_emailed(
    client: Any, user_with_data: Any, celery_worker_factory: Any
) -> None:
    from editor.models import DataExport

    data = user_with_data(photos=1)
    worker = celery_worker_factory(fashionai=None, env=WORKER_ENV)
    client.force_login(data.user)
    client.post("/profile/data/export/")
    wait_for(lambda: DataExport.objects.filter(user=data.user, state="ready").exists(), timeout=60,
             what="the export", worker=worker)
    export = DataExport.objects.get(user=data.user)
    # The console email backend writes the email into the worker's log.
    wait_for(lambda: f"/profile/data/export/{export.token}/" in worker.log(), timeout=10, what="the email",
             worker=worker)
    assert data.user.email in worker.log()


def test_a_deletion_killed_half_way_is_finished_by_the_next_worker(
    client: Any, user_with_data: Any, celery_worker_factory: Any
) -> None:
    from editor.models import AccountDeletion

    data = user_with_data(photos=6)
    total = len(stored_names(data.user.pk))
    assert total == 6 * 4 + 1
    worker = celery_worker_factory(fashionai=None, env=WORKER_ENV)
    client.force_login(data.user)
    client.post("/profile/delete/", {"password": data.user.raw_password, "confirm": "on"})

    def deleted_some() -> bool:
        row = AccountDeletion.objects.filter(user_id=data.user.pk).first()
        return row is not None and row.files_deleted >= 3

    wait_for(deleted_some, timeout=60, what="the deletion to start", worker=worker)
    worker.kill()
    left = stored_names(data.user.pk)
    assert 0 < len(left) < total, "killed half way: some files gone, some left"
    assert AccountDeletion.objects.get(user_id=data.user.pk).state == "pending"
    assert personal_data_left(data) != []  # the rows were not deleted yet

    worker.start()
    wait_for(lambda: AccountDeletion.objects.filter(user_id=data.user.pk, state="done").exists(), timeout=90,
             what="the deletion to finish after the restart", worker=worker)
    deletion = AccountDeletion.objects.get(user_id=data.user.pk)
    assert deletion.attempts >= 2
    assert stored_names(data.user.pk) == set()
    assert personal_data_left(data) == []
