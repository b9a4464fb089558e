"""A Celery worker keeps its PostgreSQL connections between tasks when DATABASE_CONN_MAX_AGE asks for it.

Celery's Django fixup closes every connection after every task whatever CONN_MAX_AGE says; with hundreds of
polls a minute that is a new PostgreSQL backend per poll (the jobs benchmark showed ~7 % of the workers' time
spent connecting). fashionsite/celery.py closes connections the way Django does after a request instead."""
from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from django.db import connection

from editor.models import EditJob
from editor.services.edit_commands import edit_job_submit
from tests.jobs.conftest import wait_for_jobs
from tests.support.fixtures import subprocess_database_url

pytestmark = pytest.mark.django_db(transaction=True)


def worker_backends(application_name: str) -> list[Any]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT backend_start FROM pg_stat_activity WHERE application_name = %s", [application_name]
        )
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.parametrize("conn_max_age", [60, 0])
def test_worker_database_connections_follow_conn_max_age(
    conn_max_age: int, celery_worker_factory: Any, fashionai_service: Any, funded_user: Any, make_photo: Any
) -> None:
    application_name = f"fai-worker-{uuid.uuid4().hex[:10]}"
    url = subprocess_database_url()
    url += ("&" if "?" in url else "?") + f"application_name={application_name}"
    worker = celery_worker_factory(
        fashionai=fashionai_service,
        concurrency=1,
        env={"DATABASE_URL": url, "DATABASE_CONN_MAX_AGE": str(conn_max_age)},
    )
    user = funded_user(3)
    photo = make_photo(user)
    ids = [edit_job_submit(user=user, photo=photo, prompt=f"a red shirt {n}", clothing="topwear").pk for n in range(3)]
    jobs = wait_for_jobs(ids, worker=worker)
    assert [job.state for job in jobs] == [EditJob.State.SUCCEEDED] * 3
    first_finish = min(job.finished_at for job in jobs)
    last_finish = max(job.finished_at for job in jobs)
    assert sum(job.poll_count for job in jobs) >= 3  # each job took several tasks: submit, polls, finish
    time.sleep(2.5)  # the beat sweeper keeps running tasks (every second) meanwhile

    opened = worker_backends(application_name)
    if conn_max_age:
        # One connection, opened before the first job finished and still serving the sweeper's tasks now.
        assert opened, "the worker closed its database connection between tasks"
        assert min(opened) <= first_finish, f"no connection outlived a task: {opened} vs {first_finish}"
    else:
        # Django's default: a fresh connection per task, none kept from the jobs' tasks.
        assert all(started > last_finish for started in opened), opened


@pytest.mark.django_db(transaction=False)
def test_an_eager_task_leaves_the_callers_connection_and_transaction_alone(make_user: Any) -> None:
    from editor.tasks import sweep_edit_jobs

    user = make_user()  # inside the test's transaction
    sweep_edit_jobs.apply()  # runs inline (eager): the task signals fire in this process
    assert connection.connection is not None and not connection.needs_rollback
    assert type(user).objects.filter(pk=user.pk).exists()
