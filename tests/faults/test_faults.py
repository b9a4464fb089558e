"""Faults against the real services: Redis, S3, PostgreSQL, the Fashion AI provider and the Celery worker each fail
while edit jobs are in flight. Afterwards every job is in its correct final state, each user's balance equals their
ledger, every job has one charge and (only if it failed or expired) one refund, and every result the provider
completed is in our storage (tests/faults/consistency.py).

Durations are scaled down: the worker polls every 0.2-2 s, sweeps every second, and its provider calls time out after
5 s (devservices/celery_worker.py FAST_WORKER_ENV). Outages are cut with a TCP proxy (devservices/tcpproxy.py) in
front of the session's service, so only the worker loses it, or by killing a throwaway server.
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from django.db import connection

from devservices.fashionai import run_fashionai
from devservices.servers import RedisServer
from devservices.tcpproxy import TcpProxy
from editor.models import EditJob, ProviderError
from editor.services.edit_commands import edit_job_submit
from tests.faults.conftest import assert_consistent, producer_broker, states, wait_final, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def submit(users: list[Any], photos: dict[Any, Any], per_user: int, prompt: str = "a red shirt") -> list[Any]:
    return [
        edit_job_submit(user=user, photo=photos[user.pk], prompt=f"{prompt} {n}", clothing="topwear").pk
        for user in users
        for n in range(per_user)
    ]


def in_flight(ids: list[Any], count: int | None = None) -> bool:
    return states(ids).count("submitted") >= (count or len(ids))


def test_redis_restarted_while_jobs_are_in_flight(celery_worker_factory: Any, funded_user: Any,
                                                  make_photo: Any) -> None:
    redis = RedisServer().start()
    try:
        with run_fashionai(delay=2.5) as fai, producer_broker(redis.url):
            worker = celery_worker_factory(fashionai=fai, env={"CELERY_BROKER_URL": redis.url, "REDIS_URL": redis.url})
            users = [funded_user(6) for _ in range(2)]
            photos = {u.pk: make_photo(u) for u in users}
            ids = submit(users, photos, 3)
            wait_until(lambda: in_flight(ids), timeout=20, what="jobs submitted", worker=worker)
            # Killed, not stopped: nothing is saved (--save ''), every queued and scheduled message is gone.
            redis.kill()
            time.sleep(2)
            redis.start()
            ids += submit(users, photos, 1, prompt="after the restart")
            # kombu 5.7 can crash the worker on a lost Redis connection ("Unrecoverable error: AttributeError" in
            # restore_unacked): production's supervisor restarts it, and so does this wait.
            done = wait_final(ids, timeout=60, worker=worker, supervise=True)
    finally:
        redis.stop()
    assert [j.state for j in done] == ["succeeded"] * len(ids)
    assert_consistent(users)


def test_s3_down_while_results_are_saved(celery_worker_factory: Any, funded_user: Any, make_photo: Any) -> None:
    s3 = urlsplit(os.environ["AWS_S3_ENDPOINT_URL"])
    proxy = TcpProxy(s3.port or 80).start()
    try:
        # The presigned URLs go through the proxy: the one internal address the service may fetch.
        allow = {"FASHIONAI_FETCH_ALLOW_INTERNAL": f"127.0.0.1:{proxy.port}"}
        with run_fashionai(delay=1.5, retention=300, env=allow) as fai:
            worker = celery_worker_factory(fashionai=fai, env={"AWS_S3_ENDPOINT_URL": proxy.url()})
            users = [funded_user(5)]
            photos = {u.pk: make_photo(u) for u in users}
            ids = submit(users, photos, 5)
            wait_until(lambda: in_flight(ids), timeout=20, what="jobs submitted", worker=worker)
            proxy.cut()
            time.sleep(5)  # the provider completes every job meanwhile; the worker can't store any result
            assert "succeeded" not in states(ids) and "failed" not in states(ids), states(ids)
            proxy.restore()
            done = wait_final(ids, timeout=60, worker=worker)
    finally:
        proxy.cut()
    assert [j.state for j in done] == ["succeeded"] * 5
    assert_consistent(users)


@pytest.mark.parametrize("conn_max_age", ["0", "60"])  # a connection per task, and kept ones as deployed
def test_postgres_unreachable_for_a_while(
    conn_max_age: str, celery_worker_factory: Any, funded_user: Any, make_photo: Any
) -> None:
    db = connection.settings_dict
    proxy = TcpProxy(int(db["PORT"] or 5432)).start()
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    try:
        with run_fashionai(delay=1.5) as fai:
            worker = celery_worker_factory(
                fashionai=fai,
                env={
                    "DATABASE_URL": f"postgres://{auth}@127.0.0.1:{proxy.port}/{db['NAME']}",
                    "DATABASE_CONN_MAX_AGE": conn_max_age,
                },
            )
            users = [funded_user(6)]
            photos = {u.pk: make_photo(u) for u in users}
            ids = submit(users, photos, 4)
            wait_until(lambda: in_flight(ids, 2), timeout=20, what="jobs submitted", worker=worker)
            proxy.cut()  # every worker connection is reset, new ones are refused
            ids += submit(users, photos, 2, prompt="while the database is away")
            time.sleep(5)
            proxy.restore()
            done = wait_final(ids, timeout=60, worker=worker)
    finally:
        proxy.cut()
    assert [j.state for j in done] == ["succeeded"] * 6
    assert_consistent(users)


def test_provider_slow_status_calls(celery_worker_factory: Any, funded_user: Any, make_photo: Any) -> None:
    # Each status/result call takes 2 s (the worker's HTTP timeout is 5 s): slow, not failing.
    with run_fashionai(delay=0.5, extra_args=["--status-delay", "2"]) as fai:
        worker = celery_worker_factory(fashionai=fai)
        users = [funded_user(4)]
        photos = {u.pk: make_photo(u) for u in users}
        ids = submit(users, photos, 4)
        done = wait_final(ids, timeout=60, worker=worker)
    assert [j.state for j in done] == ["succeeded"] * 4
    assert_consistent(users)


def test_provider_slower_than_our_timeout_until_the_deadline(celery_worker_factory: Any, funded_user: Any,
                                                             make_photo: Any) -> None:
    # Status calls hang 3 s, longer than the worker's 2 s timeout: the job can't be seen done. At its 4 s deadline
    # it expires with exactly one refund, and no late answer moves it again. (Scaled down: the defaults are 30 s
    # and 30 min; what matters is status delay > timeout, and a deadline that leaves room for one timed-out poll.)
    with run_fashionai(delay=0.2, extra_args=["--status-delay", "3"]) as fai:
        worker = celery_worker_factory(
            fashionai=fai, env={"FASHION_AI_TIMEOUT_SECONDS": "2", "FASHION_AI_JOB_DEADLINE_SECONDS": "4"}
        )
        users = [funded_user(2)]
        photos = {u.pk: make_photo(u) for u in users}
        ids = submit(users, photos, 2)
        done = wait_final(ids, timeout=60, worker=worker)
        time.sleep(3)  # late answers (3 s after the last poll) arrive now
    assert [j.state for j in done] == ["expired"] * 2
    assert states(ids) == ["expired"] * 2
    assert ProviderError.objects.filter(job_id__in=ids, kind="network").exists()
    assert_consistent(users)


def test_provider_down_for_a_while(celery_worker_factory: Any, funded_user: Any, make_photo: Any) -> None:
    with run_fashionai(delay=1.5, retention=300) as fai:
        proxy = TcpProxy(fai.port).start()
        try:
            down_view = type("Proxied", (), {"base_url": f"{proxy.url()}/v1", "api_key": fai.api_key})()
            worker = celery_worker_factory(fashionai=down_view)
            users = [funded_user(6)]
            photos = {u.pk: make_photo(u) for u in users}
            ids = submit(users, photos, 4)
            wait_until(lambda: in_flight(ids), timeout=20, what="jobs submitted", worker=worker)
            proxy.cut()  # refused connections for every poll, and for the submits below
            ids += submit(users, photos, 2, prompt="while the provider is down")
            time.sleep(6)
            jobs = EditJob.objects.filter(pk__in=ids)
            errors = ProviderError.objects.filter(job_id__in=ids)
            assert {j.state for j in jobs} <= {"created", "submitted"}, "\n".join(
                [f"{j.state}: {j.error_detail}" for j in jobs] + [f"{e.kind}: {e.detail}" for e in errors]
            )
            proxy.restore()
            done = wait_final(ids, timeout=60, worker=worker)
        finally:
            proxy.cut()
    assert [j.state for j in done] == ["succeeded"] * 6
    assert ProviderError.objects.filter(job_id__in=ids, kind="network").exists()
    assert_consistent(users)


def test_provider_flapping_with_mixed_outcomes(celery_worker_factory: Any, funded_user: Any, make_photo: Any) -> None:
    # Half the calls answer 429/500/502 and a third of the jobs really fail at the provider.
    with run_fashionai(delay=0.3, error_rate=0.5, fail_rate=0.35, extra_args=["--seed", "11"]) as fai:
        worker = celery_worker_factory(fashionai=fai)
        users = [funded_user(5) for _ in range(2)]
        photos = {u.pk: make_photo(u) for u in users}
        ids = submit(users, photos, 5)
        done = wait_final(ids, timeout=90, worker=worker)
    outcomes = {j.state for j in done}
    assert outcomes <= {"succeeded", "failed"} and "succeeded" in outcomes, [j.state for j in done]
    # Only the provider's own FAILED fails a job; injected 5xx/429 never do.
    for job in done:
        if job.state == "failed":
            assert "Simulated failure" in job.error_detail, job.error_detail
    assert ProviderError.objects.filter(job_id__in=ids, kind__in=["429", "5xx"]).exists()
    assert_consistent(users)


def test_worker_sigkilled_repeatedly(celery_worker_factory: Any, funded_user: Any, make_photo: Any) -> None:
    with run_fashionai(delay=1.0) as fai:
        worker = celery_worker_factory(fashionai=fai)
        users = [funded_user(5) for _ in range(2)]
        photos = {u.pk: make_photo(u) for u in users}
        ids = submit(users, photos, 5)
        for round_ in range(4):
            time.sleep(0.8 + 0.3 * round_)
            worker.kill()  # the worker, its pool children and its embedded beat, mid-whatever
            worker.start()
        done = wait_final(ids, timeout=60, worker=worker)
    assert [j.state for j in done] == ["succeeded"] * 10
    assert all(EditJob.objects.get(pk=pk).result_image for pk in ids)
    # Including orphans: a kill between storing a result and recording it must not leave a second copy behind.
    assert_consistent(users)


def test_s3_failing_between_result_and_thumbnail_leaves_no_orphan(celery_worker_factory: Any, funded_user: Any,
                                                                   make_photo: Any) -> None:
    """The result image is stored, then S3 fails before the thumbnail (the same window as a worker killed between
    storing a result and recording it). The retry must not leave the first copy behind in the bucket."""
    s3 = urlsplit(os.environ["AWS_S3_ENDPOINT_URL"])
    proxy = TcpProxy(s3.port or 80)
    try:
        # The presigned URLs go through the proxy: the one internal address the service may fetch.
        allow = {"FASHIONAI_FETCH_ALLOW_INTERNAL": f"127.0.0.1:{proxy.port}"}
        with run_fashionai(delay=0.5, retention=300, env=allow) as fai:
            worker = celery_worker_factory(fashionai=fai, env={"AWS_S3_ENDPOINT_URL": proxy.start().url()})
            users = [funded_user(1)]
            photos = {u.pk: make_photo(u) for u in users}
            ids = submit(users, photos, 1)
            wait_until(lambda: in_flight(ids), timeout=20, what="job submitted", worker=worker)
            proxy.cut_on_request(b"PUT ", nth=2)  # the result's PUT goes through, the thumbnail's is cut
            wait_until(lambda: proxy.tripped, timeout=20, what="the thumbnail upload", worker=worker)
            time.sleep(1)
            proxy.restore()
            done = wait_final(ids, timeout=40, worker=worker)
    finally:
        proxy.cut()
    assert [j.state for j in done] == ["succeeded"], [(j.error_code, j.error_detail) for j in done]
    assert_consistent(users)


def test_submit_answer_lost_then_sent_again_runs_once_and_charges_once(
    celery_worker_factory: Any, funded_user: Any, make_photo: Any
) -> None:
    """The submit reaches the provider, which makes the job, but the answer is lost (connection reset): the worker
    cannot tell whether it was received. It sends the submit again under the job's Idempotency-Key and gets the
    first job back: one engine run at the provider, one charge and no refund here."""
    with run_fashionai(delay=0.5, api_keys="test-key:10") as fai:
        proxy = TcpProxy(fai.port).start()
        try:
            proxied = type("Proxied", (), {"base_url": f"{proxy.url()}/v1", "api_key": fai.api_key})()
            proxy.drop_answer_to(b"POST /v2/", nth=1)
            worker = celery_worker_factory(fashionai=proxied)
            users = [funded_user(3)]
            photos = {u.pk: make_photo(u) for u in users}
            ids = submit(users, photos, 1)
            done = wait_final(ids, timeout=60, worker=worker)
        finally:
            proxy.cut()
        health = httpx.get(f"{fai.root_url}/health").json()
    assert proxy.dropped == 1
    assert ProviderError.objects.filter(job_id__in=ids, detail__startswith="submit:", kind="network").count() == 1
    assert [j.state for j in done] == ["succeeded"], [(j.error_code, j.error_detail) for j in done]
    assert health["engine_runs"] == 1 and sum(health["jobs"].values()) == 1, health
    assert_consistent(users)


def _provider_status(fai: Any, job: EditJob) -> dict[str, Any]:
    answer = httpx.get(job.status_url, headers={"x-api-key": fai.api_key}, timeout=10)
    body: dict[str, Any] = answer.json()
    return body


def test_our_deadline_cancels_the_provider_request_and_refunds(
    celery_worker_factory: Any, funded_user: Any, make_photo: Any
) -> None:
    # The provider would take 30 s; we give up after 3 s: the job expires here, refunded, and is cancelled there.
    with run_fashionai(delay=30) as fai:
        worker = celery_worker_factory(fashionai=fai, env={"FASHION_AI_JOB_DEADLINE_SECONDS": "3"})
        users = [funded_user(2)]
        photos = {u.pk: make_photo(u) for u in users}
        ids = submit(users, photos, 2)
        done = wait_final(ids, timeout=30, worker=worker)
        assert [j.state for j in done] == ["expired"] * 2
        wait_until(
            lambda: all(_provider_status(fai, j).get("error_code") == "cancelled" for j in done),
            timeout=15, what="the provider requests cancelled", worker=worker,
        )
    assert_consistent(users)


def test_deleting_a_running_edit_refunds_it_and_cancels_it_at_the_provider(
    celery_worker_factory: Any, funded_user: Any, make_photo: Any
) -> None:
    from editor.services.credits import credits_ledger_sum
    from editor.services.edit_commands import edit_job_delete

    with run_fashionai(delay=30) as fai:
        worker = celery_worker_factory(fashionai=fai)
        user = funded_user(3)
        ids = submit([user], {user.pk: make_photo(user)}, 1)
        wait_until(lambda: in_flight(ids), timeout=20, what="job submitted", worker=worker)
        job = EditJob.objects.get(pk=ids[0])
        edit_job_delete(user=user, job=job)
        assert not EditJob.objects.filter(pk=job.pk).exists()
        user.credit_account.refresh_from_db()
        assert user.credit_account.balance == 3 == credits_ledger_sum(user_id=user.pk)
        wait_until(lambda: _provider_status(fai, job).get("error_code") == "cancelled", timeout=15,
                   what="the provider request cancelled", worker=worker)
