"""`python -m lengen ...` is the `lengen` command."""

import sys

from lengen.cli import main

sys.exit(main())
