"""`python -m redraft`: the same as the `redraft` console script (and `python -m server`)."""

import sys

from .cli import main

sys.exit(main())
