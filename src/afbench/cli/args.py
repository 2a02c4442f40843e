"""argparse types for afbench's flags: each refuses bad input with a message that
names the flag's expected form, before anything is loaded or trained."""

from __future__ import annotations

import argparse
import math
import re

MAX_ACTIVATION_TEXT = 2000  # characters in one --activations entry (a formula is short)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got '{text}'")
    return value


def non_negative(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got '{text}'")
    return value


def positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got '{text}'")
    return value


def unit_interval(text: str) -> float:
    """A fraction in [0, 1)."""
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got '{text}'")
    return value


def accuracy(text: str) -> float:
    """A target accuracy in (0, 1]."""
    value = _number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected an accuracy in (0, 1] such as 0.98, got '{text}'")
    return value


def auto_or_count(text: str) -> int | str:
    """'auto' or a whole number >= 1."""
    if text == "auto":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected auto or a whole number >= 1, got '{text}'") from None


def learning_rates(text: str) -> tuple[float, ...]:
    """One learning rate, or several comma-separated."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("expected a learning rate such as 1e-3, or several: 3e-4,1e-3")
    try:
        return tuple(positive(p) for p in parts)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"learning rates must be positive numbers: {err}") from None


def seeds(text: str) -> tuple[int, ...] | str:
    """N (seeds 0..N-1), a comma list of seeds (3,7 or 42,), or 'auto'."""
    if text.strip() == "auto":
        return "auto"
    try:
        if "," in text:
            values = tuple(int(s) for s in text.split(",") if s.strip())
            if values and min(values) >= 0:
                return tuple(dict.fromkeys(values))
        elif int(text) >= 1:
            return tuple(range(int(text)))
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected N >= 1 (seeds 0..N-1), a comma list of seeds >= 0 such as 3,7 "
                                     f"(one seed: 42,), or auto; got '{text}'")


def device(text: str) -> str:
    if re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", text.strip()):
        return text.strip()
    raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got '{text}'")


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


def activation_list(text: str) -> tuple[str, ...] | str:
    """'all', or activations separated by top-level commas."""
    if text.strip() == "all":
        return "all"
    parts = split_top_level(text)
    if not parts:
        raise argparse.ArgumentTypeError("expected at least one activation, e.g. relu,tanh (or all)")
    too_long = [p for p in parts if len(p) > MAX_ACTIVATION_TEXT]
    if too_long:
        raise argparse.ArgumentTypeError(f"an activation of {len(too_long[0])} characters is too long "
                                         f"(at most {MAX_ACTIVATION_TEXT}): write it as a module:Name instead")
    return tuple(parts)


def name_list(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    if not parts:
        raise argparse.ArgumentTypeError("expected at least one name")
    return parts
