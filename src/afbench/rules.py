"""One set of rules for every value a user gives afbench, from a flag or from a study file.

A `Rule` says what a value must be ("a whole number >= 1") and reads it in both
forms: `text()` parses a command-line flag's text, `value()` checks a value a TOML
file holds (already an int, a float, a list ...). Both end in the same check, so a
study file can never hold what a flag would refuse, and the error reads the same.
Nothing here imports torch: checking input must stay instant.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable


class Invalid(ValueError):
    """A value broke its rule; the message says what was expected and what came."""

    def __init__(self, expected: str, got: str, choices: bool = False):
        self.expected, self.got, self.choices = expected, got, choices
        super().__init__(f"expected {expected}, got {got}")


@dataclass(frozen=True)
class Rule:
    expected: str  # words for the error: "a whole number >= 1"
    kinds: tuple[type, ...]  # Python types a study file's value may have
    ok: Callable[[Any], bool] = lambda value: True  # the range check, on a value of one of the kinds
    words: tuple[str, ...] = ()  # literal words also accepted, e.g. "auto"
    parse: Callable[[str], Any] | None = None  # text -> value for flags (default: by the first kind)
    normal: Callable[[Any], Any] = field(default=lambda value: value)  # e.g. 1 -> 1.0 for floats
    choices: bool = False  # a closed set of words: errors read "unknown NAME 'x': choose ..."

    def value(self, value: Any) -> Any:
        """A study file's value, checked; raises Invalid."""
        if isinstance(value, str) and value in self.words:
            return value
        if not _is(value, self.kinds) or not self.ok(value):
            raise Invalid(self.expected, _show(value), self.choices)
        return self.normal(value)

    def text(self, text: str) -> Any:
        """A flag's text, parsed and checked; raises Invalid."""
        stripped = text.strip()
        if stripped in self.words:
            return stripped
        try:
            value = (self.parse or _PARSERS[self.kinds[0]])(stripped)
        except (ValueError, KeyError, OverflowError):
            raise Invalid(self.expected, _show(text), self.choices) from None
        try:
            return self.value(value)
        except Invalid:
            raise Invalid(self.expected, _show(text), self.choices) from None


def _is(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # bool is an int in Python, never in a study file
        return bool in kinds
    return isinstance(value, kinds)


def _show(value: Any) -> str:
    """The value as the error quotes it: a long text by its start and length."""
    if isinstance(value, str):
        return f"'{value}'" if len(value) <= 60 else f"'{value[:40]}...' ({len(value):,} characters)"
    return repr(value)


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise ValueError(text)


_PARSERS: dict[type, Callable[[str], Any]] = {int: int, float: float, str: str, bool: _bool}


def _finite(value) -> bool:
    return math.isfinite(value)


# ---- the rules ------------------------------------------------------------------------------

MAX_IMAGE_SIZE = 1024  # pixels per side: 3 x 1024 x 1024 float32 is 12 MB an image, already a lot for RAM
MAX_ACTIVATION_TEXT = 2000  # characters in one activation entry (a formula is short)
MAX_SEEDS = 10_000  # seeds in one sweep (a count N, a list, or --max-seeds): more is a typo, not a study
FIRST_SEEDS = 3  # --seeds auto starts every activation with this many paired seeds (stats.sequential uses it)
NUMBER_KINDS = (float, int)

POSITIVE_INT = Rule("a whole number >= 1", (int,), lambda v: v >= 1)
NON_NEGATIVE_INT = Rule("a whole number >= 0", (int,), lambda v: v >= 0)
POSITIVE = Rule("a number > 0", NUMBER_KINDS, lambda v: _finite(v) and v > 0, normal=float)
NON_NEGATIVE = Rule("a number >= 0", NUMBER_KINDS, lambda v: _finite(v) and v >= 0, normal=float)
FINITE = Rule("a finite number", NUMBER_KINDS, _finite, normal=float)
UNIT_INTERVAL = Rule("a number in [0, 1)", NUMBER_KINDS, lambda v: 0 <= v < 1, normal=float)
ACCURACY = Rule("an accuracy in (0, 1] such as 0.98", NUMBER_KINDS, lambda v: 0 < v <= 1, normal=float)
BOOL = Rule("true or false", (bool,))
TEXT = Rule("text", (str,), lambda v: bool(v.strip()))
AUTO_OR_COUNT = Rule("auto or a whole number >= 1", (int,), lambda v: v >= 1, words=("auto",))
IMAGE_SIZE = Rule(f"a whole number of pixels from 1 to {MAX_IMAGE_SIZE}", (int,), lambda v: 1 <= v <= MAX_IMAGE_SIZE)
DEVICE = Rule("auto, cpu, cuda, cuda:N or mps", (str,), lambda v: re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", v)
              is not None)
# A study's name names its results folder (results/<name>): one safe path component.
NAME = Rule("a name of letters, digits, '.', '_' or '-' (at most 100, not starting with '.')", (str,),
            lambda v: re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}", v) is not None)


def choice(*options: str) -> Rule:
    return Rule(", ".join(options[:-1]) + " or " + options[-1] if len(options) > 1 else options[0], (str,),
                lambda v: v in options, choices=True)


def optional_choice(*options: str) -> Rule:
    """One of ``options``, or "none" (read as None: the setting is off)."""
    return Rule(" or ".join(options + ("none",)), (str,), lambda v: v in options + ("none",),
                normal=lambda v: None if v == "none" else v, choices=True)


# ---- lists: comma-separated on the command line, TOML arrays in a study file -----------------


def split_top_level(text: str) -> list[str]:
    """Split a comma list at top-level commas only, so formulas such as
    'maximum(x, 0.1 * x)' stay whole: 'relu,maximum(x, 0.1*x)' -> two entries."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


@dataclass(frozen=True)
class ListRule:
    """A non-empty list of values that each follow ``item``: 'a,b' on the command line,
    ["a", "b"] (or one bare value) in a study file. Returns a tuple."""
    expected: str
    item: Rule
    words: tuple[str, ...] = ()  # a whole-list word such as "all" or "auto"
    split: Callable[[str], list[str]] = lambda text: [p.strip() for p in text.split(",") if p.strip()]
    unique: bool = False  # keep the first of repeated items

    def value(self, value: Any) -> Any:
        if isinstance(value, str) and value in self.words:
            return value
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items:
            raise Invalid(self.expected, "an empty list")
        try:
            checked = tuple(self.item.value(v) for v in items)
        except Invalid as err:  # the item's rule says what each entry must be
            raise Invalid(f"{self.expected}, each {err.expected}", err.got, err.choices) from None
        return tuple(dict.fromkeys(checked)) if self.unique else checked

    def text(self, text: str) -> Any:
        if text.strip() in self.words:
            return text.strip()
        parts = self.split(text)
        if not parts:
            raise Invalid(self.expected, _show(text))
        try:
            checked = tuple(self.item.text(p) for p in parts)
        except Invalid as err:
            raise Invalid(f"{self.expected}, each {err.expected}", err.got, err.choices) from None
        return tuple(dict.fromkeys(checked)) if self.unique else checked


ACTIVATION = Rule(f"a name, a formula or PATH.py:NAME, at most {MAX_ACTIVATION_TEXT:,} characters (longer: too "
                  "long, write it as a module:Name)",
                  (str,), lambda v: 0 < len(v.strip()) <= MAX_ACTIVATION_TEXT, normal=str.strip)
ACTIVATIONS = ListRule("at least one activation, e.g. relu,tanh (or all)", ACTIVATION, words=("all",), split=split_top_level)
NAMES = ListRule("one or more names", TEXT, unique=True)
LEARNING_RATES = ListRule("learning rates such as 3e-4,1e-3", POSITIVE, unique=True)
SEED = NON_NEGATIVE_INT


class _Seeds(ListRule):
    """N (seeds 0..N-1), a list of seeds >= 0 (one seed on the command line: 42,), or auto.
    At most MAX_SEEDS seeds: the count is checked before the seeds are made."""

    def value(self, value: Any) -> Any:
        if _is(value, (int,)):
            if not 1 <= value <= MAX_SEEDS:
                raise Invalid(self.expected, str(value))
            return tuple(range(value))
        if isinstance(value, (list, tuple)) and len(value) > MAX_SEEDS:
            raise Invalid(self.expected, f"a list of {len(value):,} seeds")
        return super().value(value)

    def text(self, text: str) -> Any:
        if "," not in text and text.strip() not in self.words:
            try:
                return self.value(int(text))
            except ValueError:
                raise Invalid(self.expected, _show(text)) from None
        seeds = super().text(text)
        if seeds not in self.words and len(seeds) > MAX_SEEDS:
            raise Invalid(self.expected, f"a list of {len(seeds):,} seeds")
        return seeds


SEEDS = _Seeds(f"N from 1 to {MAX_SEEDS:,} (seeds 0..N-1), a list of at most {MAX_SEEDS:,} seeds >= 0 such as "
               "3,7 (one seed: --seed 42), or auto",
               NON_NEGATIVE_INT, words=("auto",), unique=True)


# ---- how a sweep runs: [execution] in a study file, the same flags on the command line ------------

EXECUTION_RULES: dict[str, Rule] = {
    "workers": AUTO_OR_COUNT, "threads": POSITIVE_INT, "stack": AUTO_OR_COUNT, "compile": BOOL, "device": DEVICE,
    "backend": choice("local", "ray"), "cost_profile": choice("auto", "on", "off"),
    "run_timeout": POSITIVE, "out": TEXT, "baseline": TEXT,
    "max_seeds": Rule(f"a whole number from {FIRST_SEEDS} to {MAX_SEEDS:,} (--seeds auto starts with {FIRST_SEEDS} "
                      "seeds)", (int,), lambda v: FIRST_SEEDS <= v <= MAX_SEEDS),
    "equivalence": POSITIVE, "data_dir": TEXT, "address": TEXT,
    "cpus_per_run": POSITIVE, "gpus_per_run": NON_NEGATIVE, "max_retries": NON_NEGATIVE_INT}
