"""`python -m afbench`: the same as the `afbench` command."""

import sys

from afbench.cli import main

sys.exit(main())
