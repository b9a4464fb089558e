"""Turn a free-text prompt ("a light blue striped linen shirt") into an edit the engine can apply.

The engine can only recolour and pattern the garment it finds, so the parser extracts exactly that: up to two colours
(with light/dark style modifiers), one simple pattern, and a material hint that changes the look (denim, leather,
silk...). Garment nouns only matter for their default colour (jeans -> denim blue); the garment's type and shape are
never changed, and the result metadata says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

RGB = tuple[int, int, int]

# Colour vocabulary, sRGB. Multi-word names are matched before single words ("navy blue" before "blue").
COLOURS: dict[str, RGB] = {
    "red": (200, 30, 40),
    "crimson": (170, 20, 45),
    "scarlet": (220, 35, 25),
    "cherry": (180, 20, 50),
    "wine": (114, 30, 50),
    "burgundy": (110, 20, 40),
    "maroon": (110, 25, 30),
    "ruby": (160, 17, 60),
    "pink": (240, 130, 170),
    "hot pink": (245, 60, 150),
    "fuchsia": (220, 40, 160),
    "magenta": (210, 30, 150),
    "rose": (230, 100, 130),
    "blush": (235, 180, 185),
    "salmon": (245, 140, 115),
    "coral": (250, 115, 90),
    "peach": (250, 190, 150),
    "orange": (240, 120, 20),
    "rust": (170, 70, 30),
    "terracotta": (195, 95, 65),
    "amber": (240, 170, 20),
    "yellow": (245, 215, 40),
    "mustard": (210, 165, 40),
    "lemon": (250, 240, 90),
    "gold": (210, 170, 50),
    "golden": (210, 170, 50),
    "cream": (245, 238, 215),
    "ivory": (250, 246, 230),
    "beige": (220, 200, 165),
    "sand": (205, 185, 145),
    "tan": (200, 160, 110),
    "camel": (190, 145, 90),
    "khaki": (190, 175, 125),
    "brown": (115, 75, 45),
    "chocolate": (90, 50, 30),
    "coffee": (110, 75, 55),
    "mocha": (130, 95, 75),
    "taupe": (140, 125, 110),
    "olive": (110, 115, 45),
    "green": (40, 150, 60),
    "lime": (160, 220, 50),
    "mint": (160, 225, 185),
    "sage": (155, 175, 135),
    "emerald": (20, 140, 90),
    "forest green": (30, 85, 45),
    "bottle green": (20, 75, 50),
    "army green": (80, 90, 50),
    "teal": (20, 125, 130),
    "turquoise": (50, 200, 195),
    "aqua": (80, 210, 220),
    "cyan": (40, 200, 230),
    "blue": (40, 80, 200),
    "sky blue": (120, 185, 235),
    "baby blue": (160, 200, 240),
    "royal blue": (40, 70, 200),
    "cobalt": (20, 70, 170),
    "navy": (25, 35, 80),
    "navy blue": (25, 35, 80),
    "denim": (60, 85, 125),
    "indigo": (50, 40, 120),
    "purple": (120, 50, 160),
    "violet": (140, 80, 200),
    "lavender": (190, 170, 225),
    "lilac": (200, 160, 215),
    "plum": (110, 45, 90),
    "mauve": (180, 130, 160),
    "white": (240, 240, 238),
    "off white": (235, 232, 222),
    "black": (28, 28, 30),
    "charcoal": (60, 62, 66),
    "grey": (128, 128, 130),
    "gray": (128, 128, 130),
    "light grey": (190, 190, 192),
    "silver": (190, 192, 198),
}

# Modifiers move the colour in CIELAB: lightness shifts and chroma scaling (applied by the engine).
MODIFIERS: dict[str, tuple[float, float]] = {
    # word: (delta L, chroma factor)
    "light": (+18.0, 0.8),
    "pale": (+24.0, 0.6),
    "pastel": (+22.0, 0.55),
    "dark": (-20.0, 1.0),
    "deep": (-14.0, 1.15),
    "bright": (+6.0, 1.3),
    "vivid": (+2.0, 1.35),
    "neon": (+8.0, 1.5),
    "muted": (-4.0, 0.6),
    "dusty": (-2.0, 0.55),
    "faded": (+10.0, 0.5),
}

PATTERNS: dict[str, str] = {
    "stripe": "stripes",
    "stripes": "stripes",
    "striped": "stripes",
    "stripy": "stripes",
    "pinstripe": "stripes",
    "pinstriped": "stripes",
    "breton": "stripes",
    "check": "checks",
    "checks": "checks",
    "checked": "checks",
    "checkered": "checks",
    "chequered": "checks",
    "plaid": "checks",
    "tartan": "checks",
    "gingham": "checks",
    "dot": "dots",
    "dots": "dots",
    "dotted": "dots",
    "polka": "dots",
    "spotted": "dots",
    "spots": "dots",
}

# Materials change the look (contrast, texture) and some imply a colour when none is named.
MATERIALS: dict[str, str] = {
    "denim": "denim",
    "jeans": "denim",
    "jean": "denim",
    "leather": "leather",
    "silk": "silk",
    "satin": "silk",
    "linen": "linen",
    "cotton": "cotton",
    "wool": "wool",
    "woolen": "wool",
    "woollen": "wool",
    "knit": "wool",
    "velvet": "velvet",
    "suede": "suede",
    "corduroy": "corduroy",
}

# Garment words whose usual colour we can apply when the prompt names none (the garment itself never changes).
GARMENT_DEFAULTS: dict[str, str] = {
    "jeans": "denim",
    "jean": "denim",
    "denim": "denim",
    "chinos": "khaki",
    "khakis": "khaki",
    "tuxedo": "black",
    "leather": "black",
    "suede": "camel",
    "camo": "army green",
    "camouflage": "army green",
    "corduroy": "brown",
}

_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Colour:
    name: str
    rgb: RGB
    lightness_delta: float = 0.0
    chroma_factor: float = 1.0


@dataclass(frozen=True)
class EditSpec:
    """What the engine will do. `colours[0]` is the main colour; a pattern uses `colours[1]` as its second colour."""

    colours: tuple[Colour, ...] = ()
    pattern: str | None = None
    material: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def applicable(self) -> bool:
        return bool(self.colours) or self.pattern is not None

    def describe(self) -> str:
        parts = [" ".join(filter(None, [_modifier_words(c), c.name])) for c in self.colours]
        text = " and ".join(parts) if parts else "original colour"
        if self.pattern:
            text += f" {self.pattern}"
        if self.material:
            text += f" ({self.material} look)"
        return text


def _modifier_words(colour: Colour) -> str:
    for word, (dl, cf) in MODIFIERS.items():
        if (dl, cf) == (colour.lightness_delta, colour.chroma_factor):
            return word
    return ""


def _tokenize(prompt: str) -> list[str]:
    text = prompt.lower().replace("-", " ").replace("colour", "").replace("color", "")
    # "grey" and "gray" both appear in prompts; "off white" is written as "off-white" too.
    return _WORD.findall(text)


def parse_prompt(prompt: str) -> EditSpec:
    words = _tokenize(prompt)
    colours: list[Colour] = []
    pattern: str | None = None
    material: str | None = None
    garment_default: str | None = None
    notes: list[str] = []
    pending: tuple[float, float] | None = None
    i = 0
    while i < len(words):
        word = words[i]
        two = " ".join(words[i : i + 2])
        if two in COLOURS:
            colours.append(_colour(two, pending))
            pending = None
            i += 2
            continue
        if word in MODIFIERS:
            # "light" only modifies a colour that follows; "dark" alone before a noun is ignored.
            pending = MODIFIERS[word]
        elif word in COLOURS:
            colours.append(_colour(word, pending))
            pending = None
        elif word in PATTERNS:
            pattern = pattern or PATTERNS[word]
        if word in MATERIALS:
            material = material or MATERIALS[word]
        if word in GARMENT_DEFAULTS and garment_default is None:
            garment_default = GARMENT_DEFAULTS[word]
        i += 1
    if not colours and garment_default is not None:
        colours.append(_colour(garment_default, pending))
        notes.append(f"no colour named; used the usual {garment_default} for the garment mentioned")
    if material == "denim" and colours and colours[0].name == "blue":
        # "blue jeans" means denim blue, not a saturated royal blue.
        colours[0] = _colour("denim", (colours[0].lightness_delta, colours[0].chroma_factor))
    # Keep at most two colours: one main, one for the pattern.
    unique: list[Colour] = []
    for colour in colours:
        if all(colour.name != seen.name or colour.lightness_delta != seen.lightness_delta for seen in unique):
            unique.append(colour)
    if len(unique) > 2:
        notes.append("more than two colours named; used the first two")
    return EditSpec(colours=tuple(unique[:2]), pattern=pattern, material=material, notes=tuple(notes))


def _colour(name: str, modifier: tuple[float, float] | None) -> Colour:
    dl, cf = modifier if modifier is not None else (0.0, 1.0)
    return Colour(name=name, rgb=COLOURS[name], lightness_delta=dl, chroma_factor=cf)
