"""Mesa agents: the cohort's patients (:class:`CohortPatient`, views on the arrays of a
:class:`~progression.model.CohortModel`) and the id bookkeeping of every agent class of the
package (:class:`AgentIds`; the literal model's agents use it too)."""

from __future__ import annotations

import itertools
import weakref
from typing import Any

import mesa
import numpy as np

from progression.body import COMPARTMENTS


class AgentIds(weakref.WeakKeyDictionary):
    """Per-model counters of agent ``unique_id`` that do not keep the models alive.

    Mesa 3.3 counts ids in ``mesa.Agent._ids``, a class-level ``defaultdict`` keyed by the
    model, so every model ever created stays in memory with all its arrays (a worker grew by
    about 40 MB per chunk of 500 patients). Our agent classes set ``_ids = AgentIds()``
    instead: a model's counter goes when the model does.
    """

    def __getitem__(self, model: Any) -> itertools.count:
        try:
            return super().__getitem__(model)
        except KeyError:
            counter = itertools.count(1)
            self[model] = counter
            return counter


class CohortPatient(mesa.Agent):
    """One patient of a cohort model as a Mesa agent: every attribute reads the cohort's
    arrays at the patient's row, so the agent costs one small object and no copy, and the
    array kernel never sees it.

    With them Mesa's own tools work on the fast engine::

        alive = model.agents.select(lambda p: p.living)
        by_dx = alive.groupby("diagnosis").count()          # {"none": 12, "ALS": 7, ...}
        weak = model.agents.select(lambda p: p.units_alive_fraction < 0.5)
        mesa.DataCollector(agent_reporters={"dx": "diagnosis", "units": "units_alive_fraction"})

    Args:
        model: the :class:`~progression.model.CohortModel`.
        row: the patient's row in the cohort's arrays.

    Attributes:
        row: the patient's row in the cohort's arrays.
    """

    _ids = AgentIds()  # mesa's own counters would keep every model alive

    def __init__(self, model: Any, row: int) -> None:
        super().__init__(model)
        self.row = row

    @classmethod
    def create_cohort(cls, model: Any) -> None:
        """One agent per patient of ``model``, in row order (``unique_id`` = row + 1)."""
        for row in range(len(model.ids)):
            cls(model, row)

    # -- who -----------------------------------------------------------------------------------

    @property
    def patient_id(self) -> int:
        return int(self.model.ids[self.row])

    @property
    def phenotype(self) -> str:
        """Latent phenotype (the truth, never observed)."""
        return list(self.model.scenario.phenotypes)[int(self.model.latent.phenotype[self.row])]

    @property
    def onset_region(self) -> str:
        """Region where degeneration starts (latent)."""
        return COMPARTMENTS[int(self.model.latent.onset_compartment[self.row])][0]

    # -- the physiology now --------------------------------------------------------------------

    @property
    def living(self) -> bool:
        return bool(self.model.state.living[self.row])

    @property
    def units_alive(self) -> np.ndarray:
        """(muscles,) living motor units per muscle, in body order (a read-only view)."""
        view = self.model.alive_count[self.row]
        view.flags.writeable = False
        return view

    def units_alive_in(self, muscle: str, side: str = "left") -> int:
        """Living units of one muscle (``side``: left, right; midline muscles ignore it)."""
        body = self.model.body
        matches = [i for i, m in enumerate(body.muscles) if m.name == muscle]
        if not matches:
            raise KeyError(f"no muscle {muscle!r}")
        i = next((i for i in matches if body.muscles[i].side == side), matches[0])
        return int(self.model.alive_count[self.row, i])

    @property
    def units_alive_fraction(self) -> float:
        """Living units of all muscles over the healthy count."""
        return float(self.model.alive_count[self.row].sum()) / self.model.body.n_units

    @property
    def strength(self) -> np.ndarray:
        """(muscles,) force over healthy force, UMN weakness included (body order)."""
        return self.model.strength(np.array([self.row]))[0]

    @property
    def respiration(self) -> float:
        """Inspiratory strength over healthy, at the last step's end."""
        return float(self.model.respiration[self.row])

    @property
    def symptom_onset_month(self) -> float | None:
        return _finite(self.model.symptom_onset[self.row])

    @property
    def death_month(self) -> float | None:
        return _finite(self.model.death_month[self.row])

    @property
    def treated(self) -> bool:
        return bool(self.model.treated[self.row])

    @property
    def enrolled(self) -> bool:
        return bool(np.isfinite(self.model.enrolment[self.row]))

    # -- what the clinic has seen --------------------------------------------------------------

    @property
    def diagnosis(self) -> str:
        """Diagnosis at the latest visit: none, PMA, PLS or ALS (none before any visit)."""
        return str(self.model.examiner.diagnosis[self.row])

    @property
    def lmn_regions(self) -> int:
        """Regions with LMN dysfunction observed so far."""
        return int(self.model.examiner.lmn_seen[self.row].sum())

    @property
    def umn_regions(self) -> int:
        """Regions with UMN dysfunction observed so far."""
        return int(self.model.examiner.umn_seen[self.row].sum())

    @property
    def last_visit_month(self) -> float | None:
        return _finite(self.model.examiner.last_exam[self.row])

    @property
    def last_visit(self) -> dict | None:
        """The latest visit's ``visits`` row (column -> value); None before the first visit."""
        found = self.model.examiner.last_findings(self.row)
        return None if found is None else found[0]

    @property
    def last_muscles(self) -> dict | None:
        """The latest visit's ``muscles`` findings (column -> (muscles,) array, body order)."""
        found = self.model.examiner.last_findings(self.row)
        return None if found is None else found[1]

    @property
    def alsfrs_r(self) -> int | None:
        """ALSFRS-R at the latest visit; None before the first visit."""
        visit = self.last_visit
        return None if visit is None else int(visit["alsfrs_r"])


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
