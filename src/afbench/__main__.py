"""`python -m afbench`: the same as the `afbench` command."""

from afbench.cli import entry

entry()
