"""Unit history: the motor units and tracts of chosen patients of a cohort, month by month.

A :class:`UnitRecorder` given to :class:`~progression.model.CohortModel` copies, at month 0 and at
the end of every step, each recorded patient's units (alive, fibres), its muscles' orphan pools
and its tracts' living axons. Without one the model pays one ``is None`` test per step. The
recorder only reads the state: it draws no random number and changes nothing, so a cohort's
tables are the same with it or without it (``tests/test_replay.py``).

Its tables (:meth:`UnitRecorder.tables`; ``progression replay`` writes them as ``units.parquet``
and ``tracts.parquet``):

- ``units``: ``patient_id``, ``month``, ``muscle``, ``side``, ``unit`` (rank in the muscle's
  pool, 0 the smallest healthy unit), ``alive``, ``fibres`` (fibres the unit commands; a dead
  unit's last value), ``healthy_fibres`` (its size at month 0) and ``orphaned_fibres`` (the
  muscle's denervated fibres not yet adopted nor atrophied, the same on every unit row of that
  muscle and month): one row per unit and month.
- ``tracts``: ``patient_id``, ``month``, ``region``, ``side``, ``axons_alive``, ``axons``: the
  corticospinal/corticobulbar axons alive in each compartment's tract sample.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from progression.body import COMPARTMENTS

#: Columns of the recorder's tables: (name, Arrow type, meaning).
UNITS_COLUMNS = (
    ("patient_id", pa.int64(), "patient identity"),
    ("month", pa.float64(), "months since the start of degeneration"),
    ("muscle", pa.string(), "muscle name"),
    ("side", pa.string(), "left, right or midline"),
    ("unit", pa.int32(), "rank in the muscle's pool (0: smallest healthy unit)"),
    ("alive", pa.bool_(), "the unit's motor neuron is alive"),
    ("fibres", pa.float32(), "fibres the unit commands (a dead unit: its last value)"),
    ("healthy_fibres", pa.float32(), "the unit's fibres at month 0"),
    ("orphaned_fibres", pa.float32(), "the muscle's orphaned fibres (same on its unit rows)"),
)
TRACTS_COLUMNS = (
    ("patient_id", pa.int64(), "patient identity"),
    ("month", pa.float64(), "months since the start of degeneration"),
    ("region", pa.string(), "bulbar, cervical, thoracic or lumbosacral"),
    ("side", pa.string(), "left, right or midline"),
    ("axons_alive", pa.int32(), "tract axons alive in the compartment's sample"),
    ("axons", pa.int32(), "axons in the sample"),
)


class UnitRecorder:
    """Copies chosen patients' units and tracts at every month of a cohort's run.

    Args:
        rows: the cohort rows (indices into its patients) to record.

    Attributes:
        rows: (recorded,) cohort rows.
        months: months recorded (0 at construction, then each step's end).
        alive, fibres: per month, (recorded, units) copies.
        orphans: per month, (recorded, muscles) orphaned fibres.
        axons: per month, (recorded, compartments) living tract axons.
    """

    def __init__(self, rows) -> None:
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        self.months: list[float] = []
        self.alive: list[np.ndarray] = []
        self.fibres: list[np.ndarray] = []
        self.orphans: list[np.ndarray] = []
        self.axons: list[np.ndarray] = []

    def record(self, cohort) -> None:
        """Copy the recorded patients' state at ``cohort.month``."""
        s, r = cohort.state, self.rows
        self.months.append(float(cohort.month))
        self.alive.append(s.alive[r])
        self.fibres.append(s.fibres[r])
        self.orphans.append(s.orphans[r].sum(axis=2, dtype=np.float32))
        self.axons.append(s.umn_alive[r].sum(axis=2, dtype=np.int32))

    def patient_tables(self, cohort, k: int) -> dict[str, pa.Table]:
        """``units`` and ``tracts`` of the ``k``-th recorded patient (see the module docstring)."""
        body = cohort.body
        t, u = len(self.months), body.n_units
        months = np.asarray(self.months)
        alive = np.stack([a[k] for a in self.alive])
        fibres = np.stack([f[k] for f in self.fibres])
        orphans = np.stack([o[k] for o in self.orphans])[:, body.muscle_of]
        names = np.array([m.name for m in body.muscles], dtype=object)
        sides = np.array([m.side for m in body.muscles], dtype=object)
        rank = np.arange(u, dtype=np.int32) - body.start[body.muscle_of].astype(np.int32)
        pid = int(cohort.ids[self.rows[k]])
        units = {
            "patient_id": np.full(t * u, pid, dtype=np.int64),
            "month": np.repeat(months, u),
            "muscle": np.tile(names[body.muscle_of], t),
            "side": np.tile(sides[body.muscle_of], t),
            "unit": np.tile(rank, t),
            "alive": alive.reshape(-1),
            "fibres": fibres.reshape(-1),
            "healthy_fibres": np.tile(self.fibres[0][k], t),
            "orphaned_fibres": orphans.reshape(-1),
        }
        c = len(COMPARTMENTS)
        axons = np.stack([a[k] for a in self.axons])
        tracts = {
            "patient_id": np.full(t * c, pid, dtype=np.int64),
            "month": np.repeat(months, c),
            "region": np.tile(np.array([r for r, _ in COMPARTMENTS], dtype=object), t),
            "side": np.tile(np.array([sd for _, sd in COMPARTMENTS], dtype=object), t),
            "axons_alive": axons.reshape(-1),
            "axons": np.full(t * c, cohort.state.umn_alive.shape[2], dtype=np.int32),
        }
        return {"units": _table(units, UNITS_COLUMNS), "tracts": _table(tracts, TRACTS_COLUMNS)}

    def tables(self, cohort) -> dict[str, pa.Table]:
        """``units`` and ``tracts`` of every recorded patient, in the order of :attr:`rows`."""
        parts = [self.patient_tables(cohort, k) for k in range(len(self.rows))]
        return {name: pa.concat_tables([p[name] for p in parts]) for name in ("units", "tracts")}


def _table(data: dict[str, np.ndarray], columns) -> pa.Table:
    return pa.table({name: pa.array(data[name], type=kind) for name, kind, _ in columns})
