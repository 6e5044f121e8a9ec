"""`python -m server`: the `redraft` command, under the name the external interface has always given it."""

import sys

from redraft.cli import main

sys.exit(main())
