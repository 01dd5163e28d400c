"""``python -m progression`` is the command line."""

import sys

from progression.cli import main

sys.exit(main())
