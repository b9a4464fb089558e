"""The product's data: photos, edit jobs, the credits ledger and operator signals.

Files live in Django's default storage (local or private S3) under per-user, unguessable keys.
"""
from __future__ import annotations

import secrets
import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from editor import storage


# Keys come from editor/storage.py (one scheme for every stored file); these are the fields' upload_to hooks.
def photo_upload_to(instance: Photo, filename: str) -> str:
    return storage.photo_key(instance.owner_id, filename)


def photo_original_upload_to(instance: Photo, filename: str) -> str:
    return storage.photo_original_key(instance.owner_id, filename)


def full_result_upload_to(instance: EditJob, filename: str) -> str:
    return storage.job_full_result_key(instance.owner_id, instance.pk)


def result_upload_to(instance: EditJob, filename: str) -> str:
    return storage.job_result_key(instance.owner_id, instance.pk, storage.extension_of(filename, ".png"))


def thumbnail_upload_to(instance: Any, filename: str) -> str:
    if isinstance(instance, EditJob):
        return storage.job_thumbnail_key(instance.owner_id, instance.pk)
    return storage.photo_thumbnail_key(instance.owner_id, filename)


class Clothing(models.TextChoices):
    TOPWEAR = "topwear", "Topwear"
    BOTTOMWEAR = "bottomwear", "Bottomwear"


class Photo(models.Model):
    """An uploaded photo, already normalised: EXIF-transposed, RGB, metadata stripped. `image` is the 512x512
    square the model sees; `original` the whole photo (long side capped) it was cut from, at `square_*`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="photos")
    image = models.ImageField(upload_to=photo_upload_to, width_field="width", height_field="height")
    thumbnail = models.ImageField(upload_to=thumbnail_upload_to, blank=True)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveIntegerField(default=0)
    # The whole photo, kept privately for full-resolution results (empty for photos stored before it was kept).
    original = models.ImageField(
        upload_to=photo_original_upload_to, blank=True, width_field="original_width", height_field="original_height"
    )
    original_width = models.PositiveIntegerField(default=0)
    original_height = models.PositiveIntegerField(default=0)
    # Where the 512 model input was cut from the original, in the original's pixels.
    square_left = models.PositiveIntegerField(default=0)
    square_top = models.PositiveIntegerField(default=0)
    square_side = models.PositiveIntegerField(default=0)
    original_name = models.CharField(max_length=255, blank=True)
    # Set when the photo is a previous edit's result ("edit again").
    source_job = models.ForeignKey(
        "EditJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="derived_photos"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="photo_owner_recent")]

    def __str__(self) -> str:
        return f"Photo {self.id} of user {self.owner_id}"


class EditJob(models.Model):
    """One edit request and its whole life at the provider."""

    class State(models.TextChoices):
        CREATED = "created", "Created"
        SUBMITTED = "submitted", "Submitted"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"

    IN_FLIGHT_STATES = (State.CREATED, State.SUBMITTED)
    FINAL_STATES = (State.SUCCEEDED, State.FAILED, State.EXPIRED)

    class Compose(models.TextChoices):
        """The full-resolution result of a SUCCEEDED job (the job's state does not wait for it)."""

        NONE = "", "Not composed (no original kept)"
        PENDING = "pending", "Being composed"
        DONE = "done", "Composed"
        FAILED = "failed", "Could not be composed (the 512 square is kept)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="edit_jobs")
    photo = models.ForeignKey(Photo, on_delete=models.PROTECT, related_name="edit_jobs")
    prompt = models.CharField(max_length=500)
    clothing = models.CharField(max_length=16, choices=Clothing.choices, default=Clothing.TOPWEAR)
    state = models.CharField(max_length=16, choices=State.choices, default=State.CREATED)
    cost_credits = models.PositiveIntegerField()

    # The provider's handle on the job; stored before anything else after submit.
    request_id = models.CharField(max_length=128, blank=True, db_index=True)
    status_url = models.URLField(max_length=500, blank=True)
    response_url = models.URLField(max_length=500, blank=True)
    provider_status = models.CharField(max_length=32, blank=True)  # QUEUED, PROCESSING, COMPLETED, FAILED
    provider_metrics = models.JSONField(default=dict, blank=True)
    inference_time = models.FloatField(null=True, blank=True)

    # Why it failed: a short machine kind ("provider_failed", "provider_406", "expired", ...) and words.
    error_code = models.CharField(max_length=64, blank=True)
    error_detail = models.TextField(blank=True)

    submit_attempts = models.PositiveIntegerField(default=0)
    poll_count = models.PositiveIntegerField(default=0)
    # Consecutive transient provider errors (429/5xx/network): drives the backoff, reset by a good answer.
    poll_errors = models.PositiveIntegerField(default=0)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    processing_at = models.DateTimeField(null=True, blank=True)
    provider_completed_at = models.DateTimeField(null=True, blank=True)  # when we first saw COMPLETED
    finished_at = models.DateTimeField(null=True, blank=True)  # entered a final state
    updated_at = models.DateTimeField(auto_now=True)

    result_image = models.ImageField(upload_to=result_upload_to, blank=True)
    result_thumbnail = models.ImageField(upload_to=thumbnail_upload_to, blank=True)
    # The whole photo with the edit composed in (result_image stays the 512 square the model made).
    full_result = models.ImageField(upload_to=full_result_upload_to, blank=True)
    compose_state = models.CharField(max_length=16, choices=Compose.choices, default=Compose.NONE, blank=True)
    compose_attempts = models.PositiveSmallIntegerField(default=0)
    compose_detail = models.CharField(max_length=255, blank=True)
    source_job = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="follow_ups"
    )
    # A staff retry points at the failed job it repeats. One-to-one: a failed edit is retried at most once, however
    # many retries race (each would be a charged job).
    retry_of = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retried_as"
    )
    # "Email me when it is ready", chosen on the form (default: the owner's profile setting).
    notify_by_email = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="job_owner_recent"),
            models.Index(fields=["owner", "state", "-created_at"], name="job_owner_state_recent"),
            models.Index(fields=["owner", "clothing", "-created_at"], name="job_owner_clothing_recent"),
            models.Index(fields=["state", "next_poll_at"], name="job_state_next_poll"),
            models.Index(fields=["created_at"], name="job_created"),
            models.Index(fields=["finished_at"], name="job_finished"),
        ]

    def __str__(self) -> str:
        return f"EditJob {self.id} ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES


class CreditAccount(models.Model):
    """The cached balance. It always equals the sum of the user's ledger entries."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="credit_account")
    balance = models.IntegerField(default=0)
    # Credits a refunded or disputed payment took back that had already been spent. The balance never goes below
    # zero; what it could not cover is owed instead, and while anything is owed the account is "held": new edits
    # are refused and credits that come in (a purchase, a refund of an edit, a grant) pay the debt first.
    owed = models.IntegerField(default=0)
    # The "you are out of credits" email: the user may turn it off; sent once per time the balance reaches 0.
    email_when_empty = models.BooleanField(default=True)
    empty_notice_sent = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="credit_balance_not_negative"),
            models.CheckConstraint(condition=Q(owed__gte=0), name="credit_owed_not_negative"),
            # A held account has nothing to spend: incoming credits settle the debt before they can be spent.
            models.CheckConstraint(condition=Q(owed=0) | Q(balance=0), name="credit_held_account_has_no_balance"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.balance} credits"

    @property
    def held(self) -> bool:
        return self.owed > 0


class CreditEntry(models.Model):
    """An append-only ledger line. Positive amounts add credits, negative ones spend them."""

    class Kind(models.TextChoices):
        GRANT = "grant", "Grant"  # sign-up bonus or staff grant
        CHARGE = "charge", "Charge"  # reserved when an edit is submitted
        REFUND = "refund", "Refund"  # a failed or expired edit gives its charge back
        ADJUST = "adjust", "Adjustment"  # staff correction, either sign
        PURCHASE = "purchase", "Purchase"  # a paid Checkout Session (external_id: its id)
        CLAWBACK = "clawback", "Payment reversed"  # a refund or dispute takes a purchase back (external_id: charge)

    # Null only for the entries accounting keeps after their account was deleted (purchases and clawbacks,
    # anonymised by editor/services/account_data.py); every other entry goes with its account.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.CASCADE, related_name="credit_entries"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount = models.IntegerField()
    balance_after = models.IntegerField()
    job = models.ForeignKey(EditJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="credit_entries")
    reason = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A one-time token (the staff form's nonce, the sign-up bonus's fixed key): the same token twice for one
    # user is refused by the constraint below, so a form posted twice moves credits once.
    idempotency_key = models.UUIDField(null=True, blank=True, editable=False)
    # The payment this entry books (a Checkout Session id for a purchase, a charge id for a clawback): one entry
    # per external payment, whatever duplicates or reorderings the webhook delivers.
    external_id = models.CharField(max_length=255, blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "credit entries"
        # Moving credits by hand is its own right, apart from editing user accounts.
        permissions = [("grant_credits", "Can grant, adjust and refund users' credits")]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="credit_one_entry_per_idempotency_key",
            ),
            # A job is charged once and refunded at most once, whatever retries or races happen.
            models.UniqueConstraint(
                fields=["job", "kind"],
                condition=Q(kind__in=["charge", "refund"]),
                name="credit_one_charge_one_refund_per_job",
            ),
            models.UniqueConstraint(
                fields=["external_id"], condition=~Q(external_id=""), name="credit_one_entry_per_external_payment"
            ),
            models.CheckConstraint(condition=~Q(amount=0), name="credit_amount_not_zero"),
        ]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="credit_user_recent"),
            models.Index(fields=["created_at", "kind"], name="credit_created_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount:+d} for user {self.user_id}"


class ProviderError(models.Model):
    """One failed provider call (kept for the operators' error breakdown)."""

    class Kind(models.TextChoices):
        BAD_REQUEST = "400", "400 bad request"
        UNAUTHORIZED = "401", "401 key rejected"
        FORBIDDEN = "403", "403 forbidden"
        NOT_FOUND = "404", "404 not found"
        NO_CREDITS = "406", "406 provider out of credits"
        FAILED = "422", "422 job failed"
        RATE_LIMITED = "429", "429 rate limited"
        SERVER = "5xx", "5xx server error"
        NETWORK = "network", "network error or timeout"
        OTHER = "other", "other"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    job = models.ForeignKey(EditJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="provider_errors")
    detail = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["created_at", "kind"], name="provider_error_created_kind")]

    def __str__(self) -> str:
        return f"{self.kind} at {self.created_at:%Y-%m-%d %H:%M}"


class OperatorAlert(models.Model):
    """Something an operator must act on (out of provider credits, key rejected)."""

    class Kind(models.TextChoices):
        PROVIDER_NO_CREDITS = "provider_no_credits", "The provider account is out of credits (406)"
        PROVIDER_KEY_REJECTED = "provider_key_rejected", "The provider rejected our API key (401)"
        PAYMENT_REVERSED = "payment_reversed", "A payment was refunded or disputed"
        ACCOUNT_HELD = "account_held", "A reversed payment's credits were spent: the account is held"
        PAYMENT_MISMATCH = "payment_mismatch", "A payment did not match its purchase"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    message = models.CharField(max_length=500)
    job = models.ForeignKey(EditJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["resolved_at", "-created_at"], name="alert_open_recent")]

    def __str__(self) -> str:
        return self.message


class DirectUpload(models.Model):
    """A presigned POST handed to a browser: its key is accepted once, and grants per user are counted."""

    key = models.CharField(max_length=200, unique=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["owner", "created_at"], name="directupload_owner_created")]

    def __str__(self) -> str:
        return self.key


# Currencies Stripe counts in whole units (no cents).
ZERO_DECIMAL_CURRENCIES = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())


class CreditPack(models.Model):
    """A pack of credits staff offer for sale (admin): bought through Stripe Checkout."""

    name = models.CharField(max_length=80)
    credits = models.PositiveIntegerField()
    price = models.DecimalField(max_digits=10, decimal_places=2, help_text="In the currency's main unit, e.g. 4.99")
    currency = models.CharField(max_length=3, default="eur", help_text="ISO 4217 code, lower case (eur, usd, gbp)")
    active = models.BooleanField(default=True, help_text="Only active packs are offered")
    sort_order = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sort_order", "price"]
        constraints = [
            models.CheckConstraint(condition=Q(credits__gt=0), name="pack_credits_positive"),
            models.CheckConstraint(condition=Q(price__gt=0), name="pack_price_positive"),
            models.CheckConstraint(condition=Q(currency__regex=r"^[a-z]{3}$"), name="pack_currency_code"),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.credits} credits for {self.price} {self.currency.upper()}"


class Purchase(models.Model):
    """One Checkout Session and what became of it. Kept for accounting after its account is deleted (user null)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for payment"
        # Checkout completed with a method the bank confirms later (SEPA debit, ACH): no credits until it does.
        PROCESSING = "processing", "Payment processing"
        FAILED = "failed", "Payment failed"  # the bank refused a delayed payment: nothing was credited
        PAID = "paid", "Paid"
        PARTLY_REFUNDED = "partly_refunded", "Partly refunded"
        REFUNDED = "refunded", "Refunded"
        DISPUTED = "disputed", "Disputed"

    # The money arrived (and maybe went back since): the purchase counts as sold, and reversals apply to it.
    PAID_STATUSES = (Status.PAID, Status.PARTLY_REFUNDED, Status.REFUNDED, Status.DISPUTED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="purchases"
    )
    pack = models.ForeignKey(CreditPack, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    pack_name = models.CharField(max_length=80)
    credits = models.PositiveIntegerField()
    amount_minor = models.PositiveIntegerField(help_text="In the currency's smallest unit (cents)")
    currency = models.CharField(max_length=3)
    checkout_session_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    reversed_at = models.DateTimeField(null=True, blank=True)  # the latest refund or dispute
    # What refunds and disputes took back so far (cumulative): the money, and the credits it stands for
    # (floor(credits * refunded / paid), all of them once fully refunded or disputed).
    amount_reversed_minor = models.PositiveIntegerField(default=0)
    credits_reversed = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="purchase_user_recent"),
            models.Index(fields=["status", "paid_at"], name="purchase_status_paid"),
        ]
        constraints = [
            # However many refund events come, a purchase never gives back more credits or money than it had.
            models.CheckConstraint(condition=Q(credits_reversed__lte=F("credits")),
                                   name="purchase_reverses_at_most_its_credits"),
            models.CheckConstraint(condition=Q(amount_reversed_minor__lte=F("amount_minor")),
                                   name="purchase_reverses_at_most_its_amount"),
        ]

    def __str__(self) -> str:
        return f"{self.pack_name} ({self.get_status_display()})"

    def _show(self, minor: int) -> str:
        if self.currency in ZERO_DECIMAL_CURRENCIES:
            return str(minor)
        return f"{minor // 100}.{minor % 100:02d}"

    @property
    def amount_display(self) -> str:
        """499 EUR cents -> "4.99"; zero-decimal currencies (JPY) as they are."""
        return self._show(self.amount_minor)

    @property
    def amount_reversed_display(self) -> str:
        return self._show(self.amount_reversed_minor)


class PaymentReversal(models.Model):
    """Refunds and a dispute of one charge: one row per charge, however often, early or out of order Stripe tells
    us. It keeps the newest facts (the largest running refund total seen, whether it is disputed); applying it
    takes back what those facts call for beyond what the purchase gave back already."""

    class Kind(models.TextChoices):
        REFUND = "refund", "Refund"
        DISPUTE = "dispute", "Dispute"  # a dispute wins over refunds: the whole purchase is taken back

    charge_id = models.CharField(max_length=255, unique=True)
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount = models.PositiveIntegerField(default=0)  # the charge, in minor units (0: not told)
    amount_refunded = models.PositiveIntegerField(default=0)  # Stripe's running total: only ever grows here
    refunded_in_full = models.BooleanField(default=False)  # Stripe's `refunded` flag
    purchase = models.ForeignKey(Purchase, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Cumulative over every step: taken from the balance, and owed because it was already spent.
    credits_taken = models.PositiveIntegerField(default=0)
    credits_owed = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # Null while it holds facts not applied yet: until the purchase it reverses is known and paid (a refund can
    # arrive before the payment's own event), and again each time a newer refund total or a dispute arrives.
    applied_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.kind} of {self.charge_id}"


def _share_token() -> str:
    return secrets.token_urlsafe(18)


class ShareLink(models.Model):
    """A public before/after page of one finished edit: no login, the owner not named. Revocable, may expire."""

    token = models.CharField(max_length=32, unique=True, default=_share_token, editable=False)
    job = models.ForeignKey(EditJob, on_delete=models.CASCADE, related_name="share_links")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    view_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"share link of {self.job_id}"


class SiteSwitches(models.Model):
    """Site-wide switches staff flip in the admin (one row, pk 1)."""

    sharing_enabled = models.BooleanField(
        default=True, help_text="Off: every public share link answers 404 and no new ones can be made."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "site switches"

    def __str__(self) -> str:
        return "Site switches"


class DataExport(models.Model):
    """"Download my data": a ZIP made by a task, stored privately, linked by email, deleted when it expires."""

    class State(models.TextChoices):
        PENDING = "pending", "Being prepared"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    token = models.CharField(max_length=64, unique=True, default=_share_token, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="data_exports")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    file_name = models.CharField(max_length=300, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    # Who is building it until when (a worker killed half way lets it lapse; the sweep starts it again).
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"export {self.pk} of user {self.user_id} ({self.state})"


class AccountDeletion(models.Model):
    """A request to delete an account and everything in it. Kept (with the user id only) as the record that the
    deletion happened; the task that does it is idempotent and resumes from here after a crash."""

    class State(models.TextChoices):
        PENDING = "pending", "Deleting"
        DONE = "done", "Deleted"

    user_id = models.BigIntegerField(unique=True)  # not a foreign key: the user row goes, this record stays
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    by_staff = models.BooleanField(default=False)
    requested_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    files_deleted = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"deletion of user {self.user_id} ({self.state})"


class UserPreferences(models.Model):
    """A person's settings that are not about their login (allauth keeps those)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preferences")
    # The default of a new edit's "email me when it is ready".
    email_when_ready = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"Preferences of user {self.user_id}"


class EditJobEmail(models.Model):
    """The one "your edit is ready / failed / timed out" email of an edit. The row is taken before sending (the
    one-to-one makes a second impossible, however many tasks race), so an edit is never emailed about twice."""

    class Kind(models.TextChoices):
        SUCCEEDED = "succeeded", "Ready"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Timed out"

    job = models.OneToOneField(EditJob, on_delete=models.CASCADE, related_name="finished_email")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    to = models.EmailField()
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.kind} email for {self.job_id}"


class WrongResultReport(models.Model):
    """A person said a finished edit is wrong. Refunded once (a monthly allowance per user) and kept for staff:
    wrong edits become a measured figure. The row outlives the edit (job set to NULL when it is deleted)."""

    class Reason(models.TextChoices):
        WRONG_GARMENT = "wrong_garment", "The clothing did not change as asked"
        WRONG_PLACE = "wrong_place", "It changed the wrong part of the photo"
        BROKEN = "broken", "The picture is damaged (blobs, smears, wrong colours)"
        OTHER = "other", "Something else"

    job = models.OneToOneField(
        EditJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="wrong_report"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="wrong_reports")
    reason = models.CharField(max_length=32, choices=Reason.choices)
    detail = models.CharField(max_length=500, blank=True)
    prompt = models.CharField(max_length=500)  # the edit's, kept for staff after it is deleted
    clothing = models.CharField(max_length=16, choices=Clothing.choices)
    refunded = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "created_at"], name="wrong_report_user_created")]

    def __str__(self) -> str:
        return f"Wrong result {self.job_id}: {self.reason}"
