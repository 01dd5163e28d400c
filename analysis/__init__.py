"""Ready queries on a run's Parquet dataset (reads only the dataset, never the engine).

Every function takes the dict from :func:`open_run` (or a run folder) and returns a polars
DataFrame, computed lazily so that only the columns and rows it needs are read;
:func:`survival_times`, :func:`relative_measures` and :func:`split_hand` return LazyFrames of
per-patient or per-examination rows for further queries. The modules hold: ``emergence``
(diagnoses against the latent phenotype), ``trajectories`` (every test over time),
``compensation`` (measures against true unit loss), ``survival`` (Kaplan-Meier), ``spread``
(regions reached, split hand) and ``report`` (the HTML report). Trial power (``endpoints``,
``trials`` and the modules beside them), sweep outcomes and sensitivity, and the calibration
targets build on the same tables; the code map (docs/development/code-map.md)
lists every module.
"""

from analysis.compensation import (
    compensation_curve,
    healthy_reference,
    hidden_loss,
    loss_at,
    relative_measures,
)
from analysis.emergence import (
    confusion,
    conversion_events,
    conversions,
    diagnosis_times,
    phenotype_emergence,
    time_to_diagnosis,
)
from analysis.io import TABLES, open_run
from analysis.spread import (
    region_onsets,
    split_hand,
    split_hand_summary,
    spread_matrix,
    spread_times,
)
from analysis.survival import (
    kaplan_meier,
    kaplan_meier_estimate,
    km_medians,
    median_survival,
    survival_at,
    survival_times,
)
from analysis.trajectories import TESTS, slopes, trajectory_quartiles

__all__ = [
    "TABLES",
    "TESTS",
    "compensation_curve",
    "confusion",
    "conversion_events",
    "conversions",
    "diagnosis_times",
    "healthy_reference",
    "hidden_loss",
    "kaplan_meier",
    "kaplan_meier_estimate",
    "km_medians",
    "loss_at",
    "median_survival",
    "open_run",
    "phenotype_emergence",
    "region_onsets",
    "relative_measures",
    "slopes",
    "split_hand",
    "split_hand_summary",
    "spread_matrix",
    "spread_times",
    "survival_at",
    "survival_times",
    "time_to_diagnosis",
    "trajectory_quartiles",
]
