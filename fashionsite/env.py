"""Strict reads of numbers, durations, flags and choices from the environment (used by fashionsite/settings.py).

Every read names its variable, its default and its range. An unset variable gives the default; a set one must be
exactly a value of the accepted form inside the range, or start-up stops with ImproperlyConfigured naming the
variable and the form. So `JOB_TASK_LEASE_SECONDS=2.5min`, `POLL_MIN_INTERVAL_SECONDS=`, `=0` where zero is not
allowed, `=lots` and `DJANGO_DEBUG=maybe` all fail at start-up instead of loading as something else. An empty value
is refused too (leave the variable unset, or comment its line out, to get the default).

`require()` states a rule between several values (e.g. the shortest poll interval is not longer than the longest).
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence

from django.core.exceptions import ImproperlyConfigured

_INTEGER = re.compile(r"[+-]?[0-9]+")
# Plain decimals only: no exponent, no inf/nan, no unit.
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _raw(name: str) -> str | None:
    """The variable's value with surrounding blanks removed; None when unset. An empty value is an error."""
    raw = os.environ.get(name)
    if raw is None:
        return None
    value = raw.strip()
    if not value:
        raise ImproperlyConfigured(
            f"{name} is set but empty: give it a value or unset it (comment its line out) to use the default"
        )
    return value


def _show(number: float) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


def _range_text(low: float | None, high: float | None, *, positive: bool) -> str:
    if positive and high is not None:
        return f"greater than 0 and at most {_show(high)}"
    if positive:
        return "greater than 0"
    if low is not None and high is not None:
        return f"between {_show(low)} and {_show(high)}"
    if low is not None:
        return f"at least {_show(low)}"
    raise TypeError("every read declares its range: give min= (or positive=True)")


def _refuse(name: str, what: str, form: str, low: float | None, high: float | None, *, positive: bool,
            example: str, raw: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(
        f"{name} must be {what}, {_range_text(low, high, positive=positive)}, written {form} "
        f"(e.g. {name}={example}), got {raw!r}"
    )


def _in_range(value: float, low: float | None, high: float | None, *, positive: bool) -> bool:
    return not ((positive and value <= 0) or (low is not None and value < low) or (high is not None and value > high))


def _check_default(name: str, default: float, low: float | None, high: float | None, *, positive: bool) -> None:
    _range_text(low, high, positive=positive)  # a read that declares no range is a programming error
    if not _in_range(default, low, high, positive=positive):
        raise ValueError(f"{name}'s default {default!r} is outside its own range")


def _unit(unit: str) -> str:
    return f" of {unit}" if unit else ""


def env_int(name: str, default: int, *, min: int, max: int | None = None, unit: str = "") -> int:
    """A whole number in [min, max], written as plain digits (no unit, no separators, no decimals)."""
    _check_default(name, default, min, max, positive=False)
    raw = _raw(name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw) or not _in_range(int(raw), min, max, positive=False):
        raise _refuse(name, f"a whole number{_unit(unit)}", "as plain digits with no unit", min, max,
                      positive=False, example=str(default), raw=raw)
    return int(raw)


def env_float(
    name: str,
    default: float,
    *,
    min: float | None = None,
    max: float | None = None,
    positive: bool = False,
    unit: str = "",
) -> float:
    """A decimal number in its declared range: [min, max], or (0, max] with positive=True.

    Written plainly (`30`, `0.5`): no unit suffix, no exponent, no inf or nan."""
    _check_default(name, default, min, max, positive=positive)
    raw = _raw(name)
    if raw is None:
        return float(default)
    if not _DECIMAL.fullmatch(raw) or not _in_range(float(raw), min, max, positive=positive):
        raise _refuse(name, f"a number{_unit(unit)}", "as a plain decimal with no unit", min, max,
                      positive=positive, example=_show(float(default)), raw=raw)
    return float(raw)


def env_text(name: str, default: str, *, max_length: int = 200) -> str:
    """A line of text (a name, a host): surrounding blanks removed, no line breaks, not empty, at most max_length."""
    raw = _raw(name)
    if raw is None:
        return default
    if len(raw) > max_length or "\n" in raw or "\r" in raw:
        raise ImproperlyConfigured(f"{name} must be one line of at most {max_length} characters, got {raw!r}")
    return raw


def env_bool(name: str, default: bool) -> bool:
    """A flag: true/false, yes/no, on/off or 1/0 (any case)."""
    raw = _raw(name)
    if raw is None:
        return default
    value = raw.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false (also yes/no, on/off, 1/0), got {raw!r}")


def env_choice(name: str, default: str, choices: Sequence[str], *, case_sensitive: bool = False) -> str:
    """One of a fixed list of words; returned as spelled in `choices`."""
    if default not in choices:
        raise TypeError(f"{name}'s default {default!r} is not one of {list(choices)}")
    raw = _raw(name)
    if raw is None:
        return default
    for choice in choices:
        if raw == choice or (not case_sensitive and raw.lower() == choice.lower()):
            return choice
    raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {raw!r}")


def env_words(name: str, default: Sequence[str], choices: Sequence[str]) -> tuple[str, ...]:
    """A comma-separated list of words, each one of `choices` (any case), at least one; returned as spelled there."""
    unknown_default = [word for word in default if word not in choices]
    if unknown_default or not default:
        raise TypeError(f"{name}'s default {list(default)} must be a non-empty list of {list(choices)}")
    raw = _raw(name)
    if raw is None:
        return tuple(default)
    by_lower = {choice.lower(): choice for choice in choices}
    words = [word.strip() for word in raw.split(",") if word.strip()]
    unknown = [word for word in words if word.lower() not in by_lower]
    if unknown or not words:
        raise ImproperlyConfigured(
            f"{name} must be a comma-separated list of {', '.join(choices)}; got {raw!r}"
            + (f" ({', '.join(unknown)} unknown)" if unknown else "")
        )
    return tuple(dict.fromkeys(by_lower[word.lower()] for word in words))


def require(condition: bool, message: str) -> None:
    """A rule between several settings; the message names the variables and their values."""
    if not condition:
        raise ImproperlyConfigured(message)
