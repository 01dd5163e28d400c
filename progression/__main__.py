"""``python -m progression`` is the command line."""

import sys

from progression.studies.cli import main

sys.exit(main())
