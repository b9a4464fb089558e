"""The home page's before/after examples: real edits by the bundled engine, made by scripts/make_home_examples.py
and shipped under static/img/examples/."""
from __future__ import annotations

from dataclasses import dataclass

FOLDER = "img/examples"
BEFORE = "before.jpg"


@dataclass(frozen=True)
class Example:
    file: str
    prompt: str
    clothing: str


EXAMPLES = (
    Example("green-top.jpg", "a person wearing a green top", "topwear"),
    Example("striped-shirt.jpg", "a person wearing a navy and white striped shirt", "topwear"),
    Example("mustard-top.jpg", "a person wearing a mustard top", "topwear"),
)
