"""The explorer's solara app: ``solara run progression.studies.explore_app:page`` (what
``progression explore`` starts). The scenario and cohort size come from the environment
variables named by ``explore.ENV_SCENARIO`` and ``explore.ENV_PATIENTS``."""

from __future__ import annotations

import os

from progression.studies.explore import (
    DEFAULT_SCENARIO,
    ENV_PATIENTS,
    ENV_SCENARIO,
    explorer_page,
)

page = explorer_page(os.environ.get(ENV_SCENARIO, str(DEFAULT_SCENARIO)),
                     int(os.environ.get(ENV_PATIENTS, "30")))
