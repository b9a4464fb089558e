"""Locust users for bench/bench_load.py: signed-in people watching an edit, browsing their gallery, submitting.

Each simulated user takes one seeded account (session cookie, an in-flight job, a photo file) from the JSON file
named by LOAD_ACCOUNTS. One request a second per user, like the job page's htmx poll (`hx-trigger="every 1s"`).
The mix is what a person does in a minute: one new edit (an upload through the real form), about a minute of
watching its status (Segmind takes ~64 s), a few gallery views.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from typing import Any

from locust import HttpUser, constant_pacing, tag, task

ACCOUNTS: list[dict[str, Any]] = json.loads(open(os.environ["LOAD_ACCOUNTS"]).read())  # noqa: SIM115
PHOTO = open(os.environ["LOAD_PHOTO"], "rb").read()  # noqa: SIM115
_next = itertools.count()
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class Person(HttpUser):
    wait_time = constant_pacing(1.0)

    def on_start(self) -> None:
        self.account = ACCOUNTS[next(_next) % len(ACCOUNTS)]
        self.client.cookies.set("sessionid", self.account["session"])
        self.csrf = ""

    @tag("status")
    @task(55)
    def poll_status(self) -> None:
        self.client.get(f"/edits/{self.account['job']}/status/?phase=processing", name="job status poll")

    @tag("gallery")
    @task(3)
    def gallery(self) -> None:
        self.client.get("/gallery/", name="gallery")

    @tag("submit")
    @task(1)
    def submit(self) -> None:
        if not self.csrf:
            page = self.client.get("/edit/new/", name="new edit form")
            match = TOKEN.search(page.text)
            if not match:
                return
            self.csrf = match.group(1)
        with self.client.post(
            "/edit/new/",
            data={"csrfmiddlewaretoken": self.csrf, "prompt": "a person wearing a red shirt", "clothing": "topwear"},
            files={"image": ("photo.jpg", PHOTO, "image/jpeg")},
            headers={"Referer": f"{self.host}/edit/new/"},
            allow_redirects=False,
            name="submit edit",
            catch_response=True,
        ) as response:
            if response.status_code == 302 and "/edits/" in response.headers.get("Location", ""):
                response.success()
            else:
                response.failure(f"submit answered {response.status_code}")
