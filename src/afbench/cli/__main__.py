"""`python -m afbench.cli`: the same as the `afbench` command."""

from afbench.cli import entry

entry()
