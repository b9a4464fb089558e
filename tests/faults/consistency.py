"""The books after a fault: every job final, money right, files right. Used by tests/faults and bench/soak.py.

- every job is in a final state (or, with `allow_running`, counted as still running);
- for every user, the cached balance equals the ledger sum;
- every job has exactly one charge; FAILED/EXPIRED jobs exactly one refund, SUCCEEDED jobs none;
- every SUCCEEDED job's result image and thumbnail exist in storage ("missing files");
- no file under users/ that no row refers to ("orphan files").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.core.files.storage import default_storage
from django.db.models import Count, Q, Sum

FINAL = ("succeeded", "failed", "expired")


@dataclass
class Report:
    jobs_by_state: dict[str, int] = field(default_factory=dict)
    not_final: list[str] = field(default_factory=list)
    balance_mismatches: list[str] = field(default_factory=list)
    charge_problems: list[str] = field(default_factory=list)
    refund_problems: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    orphan_files: list[str] = field(default_factory=list)
    users: int = 0
    files: int = 0

    @property
    def inconsistencies(self) -> int:
        return sum(len(x) for x in (self.not_final, self.balance_mismatches, self.charge_problems,
                                    self.refund_problems, self.missing_files, self.orphan_files))

    def summary(self) -> str:
        lines = [f"jobs by final state: {dict(sorted(self.jobs_by_state.items()))}",
                 f"users checked: {self.users}, files in the bucket under users/: {self.files}"]
        for name in ("not_final", "balance_mismatches", "charge_problems", "refund_problems", "missing_files",
                     "orphan_files"):
            items = getattr(self, name)
            lines.append(f"{name.replace('_', ' ')}: {len(items)}" + (f" e.g. {items[:5]}" if items else ""))
        lines.append(f"inconsistencies: {self.inconsistencies}")
        return "\n".join(lines)


def _stored(prefix: str) -> set[str]:
    try:
        dirs, files = default_storage.listdir(prefix)
    except FileNotFoundError:
        return set()
    found = {f"{prefix}{name}" for name in files}
    for folder in dirs:
        found |= _stored(f"{prefix}{folder}/")
    return found


def consistency_report(*, user_ids: list[Any] | None = None, check_orphans: bool = True) -> Report:
    from editor.models import CreditAccount, CreditEntry, EditJob, Photo

    report = Report()
    jobs = EditJob.objects.all()
    accounts = CreditAccount.objects.all()
    if user_ids is not None:
        jobs = jobs.filter(owner_id__in=user_ids)
        accounts = accounts.filter(user_id__in=user_ids)
    report.jobs_by_state = dict(Counter(jobs.values_list("state", flat=True)))
    report.not_final = [str(pk) for pk in jobs.exclude(state__in=FINAL).values_list("pk", flat=True)]

    sums = dict(CreditEntry.objects.values("user_id").annotate(total=Sum("amount")).values_list("user_id", "total"))
    for user_id, balance in accounts.values_list("user_id", "balance"):
        report.users += 1
        if sums.get(user_id, 0) != balance:
            report.balance_mismatches.append(f"user {user_id}: balance {balance} != ledger {sums.get(user_id, 0)}")

    counted = jobs.annotate(
        charges=Count("credit_entries", filter=Q(credit_entries__kind=CreditEntry.Kind.CHARGE)),
        refunds=Count("credit_entries", filter=Q(credit_entries__kind=CreditEntry.Kind.REFUND)),
    ).values_list("pk", "state", "charges", "refunds", "result_image", "result_thumbnail")
    referenced: set[str] = set()
    for pk, state, charges, refunds, image, thumb in counted:
        if charges != 1:
            report.charge_problems.append(f"job {pk} ({state}): {charges} charges")
        wanted = 1 if state in ("failed", "expired") else 0
        if state in FINAL and refunds != wanted:
            report.refund_problems.append(f"job {pk} ({state}): {refunds} refunds")
        if state == "succeeded":
            for name in (image, thumb):
                if not name or not default_storage.exists(name):
                    report.missing_files.append(f"job {pk}: {name or '(no file recorded)'}")
        referenced.update(n for n in (image, thumb) if n)

    if check_orphans:
        for image, thumb in Photo.objects.values_list("image", "thumbnail"):
            referenced.update(n for n in (image, thumb) if n)
        referenced.update(n for n in EditJob.objects.values_list("result_image", flat=True) if n)
        referenced.update(n for n in EditJob.objects.values_list("result_thumbnail", flat=True) if n)
        # Keys are users/<id>/...: with user_ids, only their folders (other tests share the bucket).
        prefixes = [f"users/{uid}/" for uid in user_ids] if user_ids is not None else ["users/"]
        stored = set().union(*(_stored(prefix) for prefix in prefixes))
        report.files = len(stored)
        report.orphan_files = sorted(stored - referenced)
    return report
