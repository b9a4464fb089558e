"""Rebuild the dashboard's daily rollup for a day or a range: after a data fix, an import or a restore."""
from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from editor.dashboard.services import local_today, usage_rollup_build_range


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"not a date (YYYY-MM-DD): {value!r}") from exc


class Command(BaseCommand):
    help = "Rebuild the usage rollup rows for every day from --from to --to (inclusive; default today)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD")
        parser.add_argument("--to", dest="end", help="last day, YYYY-MM-DD (default: --from)")

    def handle(self, *args: Any, **options: Any) -> None:
        start = _day(options["start"])
        end = _day(options["end"]) if options["end"] else start
        if end < start:
            raise CommandError("--to is before --from")
        if start > local_today():
            raise CommandError("--from is in the future")
        built = usage_rollup_build_range(start=start, end=min(end, local_today()))
        self.stdout.write(f"Rebuilt the usage rollup for {built} day(s), {start} to {min(end, local_today())}.")
