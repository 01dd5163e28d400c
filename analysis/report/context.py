"""What every section of the report reads: the run, its cohort, the phenotype order, the
figure and table numbering, and the time axis the sections share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from analysis.io import RunStatus, open_run, patients, run_status
from analysis.report import page
from analysis.report.plots import PHENOTYPE_COLOURS, sorted_groups

#: Months since onset shown in the figures.
HORIZON = 60.0
#: Months since onset of the confusion tables and the trajectory table.
CONFUSION_MONTHS = (12, 24, 36)


@dataclass
class Context:
    """One run as the sections see it; :meth:`figure` and :meth:`table` number what they add."""

    path: Path
    status: RunStatus
    #: The run's lazy tables (:func:`analysis.io.open_run`).
    run: dict[str, pl.LazyFrame]
    #: One row a patient: arm, latent phenotype, onset site and the months that matter.
    cohort: pl.DataFrame
    #: Every latent phenotype of the run, in the order of :data:`PHENOTYPE_COLOURS`.
    all_phenotypes: list[str]
    #: Latent phenotypes with at least one symptomatic patient: the sections' groups.
    phenotypes: list[str]
    figures: int = 0
    tables: int = 0

    @classmethod
    def open(
        cls, path: Path, allow_incomplete: bool = False, status: RunStatus | None = None
    ) -> Context:
        status = status or run_status(path)
        run = open_run(path, allow_incomplete=allow_incomplete, status=status)
        cohort = patients(
            run,
            ["arm", "phenotype", "onset_site", "symptom_onset_month", "death_month",
             "age_at_onset_years", "first_visit_month"],
        ).collect()
        all_phenotypes = sorted_groups(
            cohort["phenotype"].unique().to_list(), list(PHENOTYPE_COLOURS)
        )
        symptomatic = cohort.filter(pl.col("symptom_onset_month").is_not_null())
        phenotypes = [
            p for p in all_phenotypes if p in set(symptomatic["phenotype"].to_list())
        ]
        return cls(path, status, run, cohort, all_phenotypes, phenotypes)

    def figure(self, fig, caption: str) -> str:
        """``fig`` as the next numbered figure."""
        self.figures += 1
        return page.figure(fig, self.figures, caption)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]], caption: str) -> str:
        """The next numbered table."""
        self.tables += 1
        return page.table(header, rows, f"<b>Table {self.tables}.</b> {caption}")

    def phenotype_rank(self) -> pl.Expr:
        """The rank of each row's latent phenotype in the report's order (others last)."""
        rank = {p: i for i, p in enumerate(self.phenotypes)}
        return pl.col("phenotype").replace_strict(rank, default=len(rank))

    def ordered(self, df: pl.DataFrame, *then: str) -> pl.DataFrame:
        """``df`` sorted by latent phenotype in the report's order, then by ``then``."""
        return df.sort(self.phenotype_rank(), *then)
