"""Forms for the website. They check shapes and find ids among the user's own objects; commands do the real work."""
from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from editor.images import ACCEPTED_LABEL, CropSquare
from editor.models import Clothing, EditJob, Photo
from editor.selectors.gallery import edit_job_for_owner, photo_for_owner
from editor.services.edit_commands import (
    CLOTHING_MISSING,
    PROMPT_MAX,
    PROMPT_MISSING,
    PROMPT_TOO_LONG,
    prompt_problem,
)

# (chip label, prompt): short labels keep the chips on a line or two, even on a phone.
PROMPT_EXAMPLES = (
    ("Red hoodie", "a person wearing a red hoodie"),
    ("Blue jeans", "a person wearing blue jeans"),
    ("Black leather jacket", "a person wearing a black leather jacket"),
    ("Green striped shirt", "a person wearing a green striped shirt"),
    ("White linen trousers", "a person wearing white linen trousers"),
    ("Navy pleated skirt", "a person wearing a navy pleated skirt"),
)


class EditForm(forms.Form):
    """A new edit: a photo (uploaded now, uploaded straight to S3 before, or a previous result) + prompt."""

    image = forms.FileField(
        required=False,
        # An empty file goes on to the upload checks, which say so in their own words (editor/images.py).
        allow_empty_file=True,
        label="Photo",
        help_text=f"{ACCEPTED_LABEL}, up to {settings.UPLOAD_MAX_BYTES // (1024 * 1024)} MB. "
        "A photo of one person works best.",
        widget=forms.ClearableFileInput(
            attrs={"accept": "image/jpeg,image/png,image/webp,image/heic,image/heif,.heic,.heif"}
        ),
    )
    # A photo already stored (a direct S3 upload the server has normalised).
    photo = forms.UUIDField(required=False, widget=forms.HiddenInput)
    # "Edit again": start from this finished edit's result.
    source_job = forms.UUIDField(required=False, widget=forms.HiddenInput)
    crop_left = forms.FloatField(required=False, min_value=0, max_value=1, widget=forms.HiddenInput)
    crop_top = forms.FloatField(required=False, min_value=0, max_value=1, widget=forms.HiddenInput)
    crop_side = forms.FloatField(required=False, min_value=0.05, max_value=1, widget=forms.HiddenInput)
    prompt = forms.CharField(
        # Checked with the command's own rule and words (clean_prompt); the command normalises it once.
        max_length=PROMPT_MAX * 2,
        error_messages={"required": PROMPT_MISSING, "max_length": PROMPT_TOO_LONG},
        label="What should the clothing become?",
        help_text="Describe the new garment, e.g. “a person wearing a red hoodie”.",
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "a person wearing a red hoodie"}),
    )
    clothing = forms.ChoiceField(
        choices=Clothing.choices, initial=Clothing.TOPWEAR, widget=forms.RadioSelect, label="Which part?",
        error_messages={"required": CLOTHING_MISSING, "invalid_choice": CLOTHING_MISSING},
    )
    # Its initial value is the profile's default (the view sets it).
    notify_by_email = forms.BooleanField(required=False, label="Email me when it is ready")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.photo_obj: Photo | None = None
        self.source_job_obj: EditJob | None = None

    def clean_prompt(self) -> str:
        prompt = str(self.cleaned_data.get("prompt") or "")
        problem = prompt_problem(prompt)
        if problem:
            raise forms.ValidationError(problem)
        return prompt

    def keep_photo(self, photo: Photo) -> None:
        """Hand a photo stored for this form back to it: the page shows it and the hidden field carries its id."""
        self.photo_obj = photo
        self.data = {**dict(self.data.items()), "photo": str(photo.pk)}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        sources = [bool(data.get("image")), bool(data.get("photo")), bool(data.get("source_job"))]
        if sum(sources) == 0:
            self.add_error("image", "Please choose a photo.")
        elif sum(sources) > 1:
            self.add_error("image", "Please choose just one photo.")
        if data.get("photo"):
            self.photo_obj = photo_for_owner(user=self.user, photo_id=data["photo"])
            if self.photo_obj is None:
                self.add_error("image", "That photo was not found. Please upload it again.")
        if data.get("source_job"):
            job = edit_job_for_owner(user=self.user, job_id=data["source_job"])
            if job is None or job.state != EditJob.State.SUCCEEDED or not job.result_image:
                self.add_error("image", "That edit was not found or has no result to edit again.")
            else:
                self.source_job_obj = job
        return data

    @property
    def crop(self) -> CropSquare | None:
        return crop_from(self.cleaned_data)


def crop_from(data: Any) -> CropSquare | None:
    values = [data.get(name) for name in ("crop_left", "crop_top", "crop_side")]
    if any(v in (None, "") for v in values):
        return None
    try:
        left, top, side = (float(v) for v in values)
    except (TypeError, ValueError):
        return None
    if not (0 <= left <= 1 and 0 <= top <= 1 and 0.05 <= side <= 1):
        return None
    return CropSquare(left=left, top=top, side=side)


class GalleryFilterForm(forms.Form):
    """Only for rendering the filter bar; the selector parses the query itself (bad values are ignored)."""

    q = forms.CharField(required=False, label="Search prompts", max_length=100,
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "e.g. jeans"}))
    status = forms.ChoiceField(required=False, label="Status", choices=[
        ("", "Any status"), ("done", "Done"), ("running", "In progress"), ("failed", "Failed")])
    clothing = forms.ChoiceField(required=False, label="Part", choices=[("", "Top or bottom"), *Clothing.choices])
