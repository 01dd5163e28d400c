"""``python -m analysis.report RUN --out DIR``: see :func:`analysis.report.main`."""

import sys

from analysis.report import main

sys.exit(main())
