"""Locust users for bench/bench_load.py: signed-in people watching an edit, browsing their gallery, submitting.

Each simulated user takes one seeded account (session cookie, an in-flight job) from the JSON file named by
LOAD_ACCOUNTS. One request a second per user, like the job page's htmx poll (`hx-trigger="every 1s"`).
The mix is what a person does in a minute: one new edit (an upload through the real form), about a minute of
watching its status (Segmind takes ~64 s), a few gallery views.

FastHttpUser (geventhttpclient), not HttpUser: python-requests under gevent costs the load generator so much CPU
on this 2-core machine that its own queueing showed up as server latency (p50 130 ms at 50 users, where a plain
threaded client measured 9 ms against the same server).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import secrets
import time
from typing import Any

from locust import FastHttpUser, constant_pacing, tag, task
from urllib3 import encode_multipart_formdata

ACCOUNTS: list[dict[str, Any]] = json.loads(open(os.environ["LOAD_ACCOUNTS"]).read())  # noqa: SIM115
PHOTO = open(os.environ["LOAD_PHOTO"], "rb").read()  # noqa: SIM115
_next = itertools.count()


class Person(FastHttpUser):
    wait_time = constant_pacing(1.0)

    def on_start(self) -> None:
        # People open their job pages at unrelated moments, so their once-a-second polls are spread over the
        # second. Without this offset users joining 5 a second under constant pacing poll in 5 lockstep waves.
        time.sleep(random.random())
        self.account = ACCOUNTS[next(_next) % len(ACCOUNTS)]
        # Cookies are sent explicitly: a CSRF secret of our own (Django accepts the unmasked 32-character secret as
        # the form token) and the seeded session.
        self.client.client.cookiejar = None
        self.csrf = secrets.token_hex(16)
        self.headers = {"Cookie": f"sessionid={self.account['session']}; csrftoken={self.csrf}"}
        self.seen_form = False

    @tag("status")
    @task(55)
    def poll_status(self) -> None:
        self.client.get(f"/edits/{self.account['job']}/status/?phase=processing", name="job status poll",
                        headers=self.headers)

    @tag("gallery")
    @task(3)
    def gallery(self) -> None:
        self.client.get("/gallery/", name="gallery", headers=self.headers)

    @tag("submit")
    @task(1)
    def submit(self) -> None:
        if not self.seen_form:
            self.client.get("/edit/new/", name="new edit form", headers=self.headers)
            self.seen_form = True
        body, content_type = encode_multipart_formdata({
            "csrfmiddlewaretoken": self.csrf, "prompt": "a person wearing a red shirt", "clothing": "topwear",
            "image": ("photo.jpg", PHOTO, "image/jpeg"),
        })
        with self.client.post(
            "/edit/new/", data=body, headers={**self.headers, "Content-Type": content_type},
            allow_redirects=False, name="submit edit", catch_response=True,
        ) as response:
            if response.status_code == 302 and "/edits/" in (response.headers.get("Location") or ""):
                response.success()
            else:
                response.failure(f"submit answered {response.status_code}")
