"""argparse types made from afbench.rules: a flag refuses exactly what a study file
refuses, with the same words, before anything is loaded or trained."""

from __future__ import annotations

import argparse
import textwrap

from afbench import rules


def flag(rule) -> callable:
    """An argparse ``type=`` that parses a flag's text with ``rule``."""
    def parse(text: str):
        try:
            return rule.text(text)
        except rules.Invalid as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = rule.expected  # argparse names the type in some messages
    return parse


positive_int = flag(rules.POSITIVE_INT)
non_negative_int = flag(rules.NON_NEGATIVE_INT)
positive = flag(rules.POSITIVE)
non_negative = flag(rules.NON_NEGATIVE)
unit_interval = flag(rules.UNIT_INTERVAL)
accuracy = flag(rules.ACCURACY)
auto_or_count = flag(rules.AUTO_OR_COUNT)
learning_rates = flag(rules.LEARNING_RATES)
seeds = flag(rules.SEEDS)
seed = flag(rules.SEED)
device = flag(rules.DEVICE)
activation_list = flag(rules.ACTIVATIONS)
name_list = flag(rules.NAMES)
image_size = flag(rules.IMAGE_SIZE)
split_top_level = rules.split_top_level


def path(text: str) -> str:
    """An argparse ``type=`` for a folder or file to read or write: '' (which would mean
    the current folder, or the root) is refused; the text is kept as given."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a path, got {text!r}: name a folder or file")
    return text


class Parser(argparse.ArgumentParser):
    """argparse with prefixes off (``--seed`` is never ``--seeds``) and every
    sub-parser made the same way."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)
        self.set_defaults(_parser=self)  # the chosen sub-command's parser, for its own errors

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but a flag the chosen sub-command does not know is reported with
        that command's usage (`afbench run --epoch 3`), not the top level's."""
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            getattr(parsed, "_parser", self).error(f"unrecognized arguments: {' '.join(unknown)}")
        return parsed

    def short_usage(self) -> str:
        """'usage: afbench run [options]': the command's shape, not its 25 lines of options."""
        parts = [self.prog]
        if any(a.option_strings and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))
               for a in self._actions):
            parts.append("[options]")
        for action in self._actions:
            if action.option_strings:
                continue
            if isinstance(action, argparse._SubParsersAction):
                parts.append(f"{action.metavar or 'COMMAND'} ...")
            else:
                name = action.metavar or action.dest.upper()
                parts.append(f"{name} ..." if action.nargs in ("+", "*") else name)
        return f"usage: {' '.join(parts)} (every option: {self.prog} --help)"

    def error(self, message: str):
        """Bad flags: the short usage and the message, each wrapped to the terminal (80
        columns without one), exit status 2; `--help` still prints the whole usage."""
        from afbench.cli.output import fit

        self.exit(2, f"{fit(self.short_usage())}\n{fit(f'{self.prog}: error: {message}')}\n")


class _Formatter(argparse.HelpFormatter):
    """Paragraphs wrapped to the terminal; example blocks (indented lines) kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.split("\n\n"):
            lines = paragraph.splitlines()
            if any(line.startswith("  ") for line in lines):
                paragraphs.append("\n".join(indent + line for line in lines))
            else:
                paragraphs.append(textwrap.fill(" ".join(paragraph.split()), width, initial_indent=indent,
                                                subsequent_indent=indent))
        return "\n\n".join(paragraphs)
