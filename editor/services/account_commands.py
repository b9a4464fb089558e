"""Commands on a person's data, called by views and the admin: request an export, request the account's deletion.
Each writes its row through editor/services/account_data.py and starts the task on commit (editor/dispatch.py);
if the broker is down, the beat sweep starts it later."""
from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from editor.dispatch import enqueue_task
from editor.models import AccountDeletion, DataExport
from editor.services.account_data import account_deletion_request, data_export_request

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def data_export_start(*, user: AbstractBaseUser, requested_by: AbstractBaseUser | None = None) -> DataExport:
    with transaction.atomic():
        export = data_export_request(user=user, requested_by=requested_by)
        export_id = str(export.pk)
        transaction.on_commit(lambda: enqueue_task("data_export", export_id))
    return export


def account_delete_start(
    *, user: AbstractBaseUser, password: str | None, confirmed: bool, by_staff: AbstractBaseUser | None = None
) -> AccountDeletion:
    with transaction.atomic():
        deletion = account_deletion_request(user=user, password=password, confirmed=confirmed, by_staff=by_staff)
        deletion_id = str(deletion.pk)
        transaction.on_commit(lambda: enqueue_task("account_deletion", deletion_id))
    return deletion
