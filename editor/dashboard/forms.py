from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django import forms

from editor.dashboard.selectors import Period, period_for
from editor.dashboard.services import local_today

# A custom period longer than this would make one page read thousands of rollup rows.
MAX_PERIOD_DAYS = 366


class PeriodForm(forms.Form):
    period = forms.ChoiceField(
        choices=[("today", "Today"), ("7d", "7 days"), ("30d", "30 days"), ("custom", "Custom")],
        required=False,
    )
    start = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("period") == "custom":
            start: date | None = data.get("start")
            end: date | None = data.get("end")
            if not start or not end:
                raise forms.ValidationError("A custom period needs both dates.")
            if end < start:
                raise forms.ValidationError("The period ends before it starts.")
            if start > local_today():
                raise forms.ValidationError("The period starts in the future.")
            if (end - start) > timedelta(days=MAX_PERIOD_DAYS):
                raise forms.ValidationError(f"Choose at most {MAX_PERIOD_DAYS} days.")
        return data

    def get_period(self) -> Period:
        """The chosen period, or the last 7 days when the form is empty or invalid."""
        if not self.is_valid():
            return period_for(key="7d")
        data = self.cleaned_data
        return period_for(key=data.get("period") or "7d", start=data.get("start"), end=data.get("end"))
