"""`python -m redraft`: the same as the `redraft` console script."""

import sys

from .cli import main

sys.exit(main())
