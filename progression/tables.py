"""The output tables' columns, units and Arrow types, and how a cohort fills them.

The schema is documented once, here (``COLUMNS``); the documentation's schema section
(docs/running/output.md) is generated from it. Rows are sorted by (patient_id, month[, muscle
order]) so a chunk's tables do not depend on the order in which patients were examined.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from progression.body import COMPARTMENTS

F64, I64, I16, I8, BOOL, STR = (
    pa.float64(),
    pa.int64(),
    pa.int16(),
    pa.int8(),
    pa.bool_(),
    pa.string(),
)

#: table -> [(column, Arrow type, unit and meaning)]; categories are strings (dictionary-encoded
#: on disk). ``month`` counts from the start of degeneration.
COLUMNS: dict[str, list[tuple[str, pa.DataType, str]]] = {
    "patients": [
        ("patient_id", I64, "patient identity (keys all its randomness)"),
        ("arm", STR, "arm of the cohort"),
        ("phenotype", STR, "latent phenotype (ALS, PMA, PLS, ...): the truth, never observed"),
        (
            "onset_region",
            STR,
            "region where degeneration starts: bulbar, cervical, thoracic, lumbosacral",
        ),
        ("onset_side", STR, "left, right or midline"),
        ("age_at_degeneration_years", F64, "age at month 0 (years)"),
        ("age_at_onset_years", F64, "age at symptom onset (years); null if never symptomatic"),
        ("symptom_onset_month", F64, "emergent symptom onset (months); null if none in the run"),
        ("first_visit_month", F64, "first examination (months); null if never seen"),
        ("death_month", F64, "death (months); null if alive at the end"),
        ("death_cause", STR, "respiratory failure or other causes; null if alive"),
        ("end_month", F64, "end of follow-up: death or the end of the run (months)"),
        ("lmn_speed", F64, "LMN hazard of a weight-1 neuron (1/month); 0 without an LMN process"),
        ("umn_speed", F64, "UMN hazard of a weight-1 axon (1/month); 0 without a UMN process"),
        ("lmn_onset_month", F64, "LMN process onset (months); null without one"),
        ("umn_onset_month", F64, "UMN process onset (months); null without one"),
        ("reinnervation_capacity", F64, "c_max: largest unit size over healthy size"),
        ("reinnervation_time_constant_months", F64, "tau_r of orphan adoption (months)"),
        ("symptom_threshold", F64, "function fraction below which a region is symptomatic"),
        ("respiratory_threshold", F64, "respiratory strength fraction at which breathing fails"),
        ("referral_delay_months", F64, "symptom onset to first visit, as drawn (months)"),
        ("final_diagnosis", STR, "diagnosis at the last visit: none, PMA, PLS, ALS"),
        ("screenings", I16, "trial screening visits (0 without a [trial])"),
        ("enrolled", BOOL, "randomised into the trial (false: never eligible, a screen failure)"),
        ("enrolment_month", F64, "randomisation, trial month 0 (months); null if not enrolled"),
        ("dropout_month", F64, "left the trial, missing at random (months); null if not"),
    ],
    "visits": [
        ("patient_id", I64, "patient identity"),
        ("arm", STR, "arm"),
        ("month", F64, "visit month since the start of degeneration"),
        ("trial_month", F64, "months since randomisation; null before it or if not enrolled"),
        ("alsfrs_r", I16, "ALSFRS-R-like total, 0-48"),
        ("alsfrs_bulbar", I16, "items 1-3 (speech, salivation, swallowing), 0-12"),
        ("alsfrs_fine_motor", I16, "items 4-6 (handwriting, cutting food, dressing), 0-12"),
        ("alsfrs_gross_motor", I16, "items 7-9 (turning in bed, walking, stairs), 0-12"),
        ("alsfrs_respiratory", I16, "items 10-12 (dyspnoea, orthopnoea, insufficiency), 0-12"),
        ("svc_percent", F64, "slow vital capacity (% predicted)"),
        ("babinski", BOOL, "extensor plantar response"),
        ("hoffmann", BOOL, "Hoffmann sign (finger flexor reflex)"),
        ("jaw_jerk", STR, "absent, reduced, normal or brisk"),
        ("dysarthria", STR, "none, flaccid, spastic or mixed"),
        ("pseudobulbar_affect", BOOL, "uncontrolled laughing or crying"),
        ("diagnosis", STR, "clinical phenotype from findings so far: none, PMA, PLS, ALS"),
        ("gold_coast", BOOL, "Gold Coast (2020) criteria for ALS met"),
        ("lmn_regions", I8, "regions with LMN dysfunction observed so far (0-4)"),
        ("umn_regions", I8, "regions with UMN dysfunction observed so far (0-4)"),
    ],
    "muscles": [
        ("patient_id", I64, "patient identity"),
        ("arm", STR, "arm"),
        ("month", F64, "visit month"),
        ("trial_month", F64, "months since randomisation; null before it or if not enrolled"),
        ("muscle", STR, "muscle name (tongue, APB, FDI, ADM, biceps, diaphragm, ...)"),
        ("region", STR, "bulbar, cervical, thoracic or lumbosacral"),
        ("side", STR, "left, right or midline"),
        ("cmap_mv", F64, "compound muscle action potential amplitude (mV)"),
        (
            "mune",
            F64,
            "motor unit number estimate (units): exam.mune_method, by default incremental "
            "stimulation of the simulated recording; 0 if no unit responds; null in muscles "
            "outside exam.mune_muscles",
        ),
        ("munix", F64, "motor unit number index (index units)"),
        ("mrc_grade", I8, "MRC strength grade 0-5"),
        ("reflex_grade", I8, "tendon reflex 0-4 (2 normal); null where no reflex is tested"),
        ("tone", STR, "flaccid, normal or spastic; null where tone is not tested"),
        ("wasting", BOOL, "visible wasting"),
        ("fasciculations_per_min", F64, "fasciculations at rest (per minute)"),
        ("fibrillation_grade", I8, "fibrillation potentials 0-4 on needle EMG"),
        (
            "mup_amplitude_uv",
            F64,
            "needle motor unit potential amplitude (microvolts); null if no units",
        ),
        ("cmct_ms", F64, "central motor conduction time (ms); null if not a TMS target or no MEP"),
        ("mep_present", BOOL, "motor evoked potential present; null if not a TMS target"),
        ("units_alive_fraction", F64, "truth: living units over healthy units"),
        ("fibres_fraction", F64, "truth: fibres of living units over healthy fibres"),
        ("strength_fraction", F64, "truth: force over healthy force"),
    ],
    "events": [
        ("patient_id", I64, "patient identity"),
        ("arm", STR, "arm"),
        ("month", F64, "when (months; may be fractional)"),
        ("event", STR, "region_onset, first_visit, diagnosis, enrolment, dropout or death"),
        ("region", STR, "region of a region_onset; null otherwise"),
        (
            "detail",
            STR,
            "side (region_onset), category (diagnosis), arm (enrolment), cause (death)",
        ),
    ],
    "scans": [
        ("patient_id", I64, "patient identity (only where the scenario records scans)"),
        ("arm", STR, "arm"),
        ("month", F64, "visit month"),
        ("muscle", STR, "muscle name"),
        ("side", STR, "left, right or midline"),
        ("stimulus_ma", F64, "stimulus (mA); rows of a scan in the order delivered, falling"),
        ("amplitude_mv", F64, "response: SMUPs of the units that fired plus noise (mV)"),
    ],
}

SCHEMAS = {name: pa.schema([(c, t) for c, t, _ in cols]) for name, cols in COLUMNS.items()}


def _nullable(x: np.ndarray) -> np.ndarray | list:
    """Floats with inf/nan as nulls."""
    x = np.asarray(x, dtype=np.float64)
    return pa.array(x, mask=~np.isfinite(x))


def _table(name: str, data: dict, order: np.ndarray | None = None) -> pa.Table:
    schema = SCHEMAS[name]
    take = None if order is None else pa.array(order)
    arrays = []
    for f in schema:
        col = data[f.name]
        if not isinstance(col, pa.Array) and f.type == STR:
            col = pa.array(np.asarray(col, dtype=object), type=STR)  # None: null
        if isinstance(col, pa.Array):
            arrays.append((col if take is None else col.take(take)).cast(f.type))
            continue
        if order is not None:
            col = np.asarray(col)[order]
        if f.type == F64:
            arrays.append(_nullable(col))
        else:
            arrays.append(pa.array(col, type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _categories(names, codes: np.ndarray) -> pa.Array:
    """Strings as Arrow builds them from int codes: ``names[codes]``, without a Python
    string per row."""
    return pa.array(list(names), type=STR).take(pa.array(np.asarray(codes)))


def _repeat(value: str, n: int) -> pa.Array:
    """``n`` copies of one string."""
    return _categories([value], np.zeros(n, dtype=np.int8))


def _concat(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]} if rows else {}


def build(cohort) -> dict[str, pa.Table]:
    """The tables of one cohort (one arm of a chunk): four, and ``scans`` when recorded."""
    arm = cohort.arm
    lat = cohort.latent
    n = len(cohort.ids)
    region = _categories([r for r, _ in COMPARTMENTS], lat.onset_compartment)
    side = _categories([sd for _, sd in COMPARTMENTS], lat.onset_compartment)
    onset = cohort.symptom_onset
    end = np.minimum(cohort.death_month, cohort.month)
    dead = np.isfinite(cohort.death_month)
    cause = np.where(dead, cohort.death_cause, None)
    final = np.where(np.isfinite(cohort.first_visit), cohort.examiner.diagnosis, None)
    patients = {
        "patient_id": cohort.ids,
        "arm": _repeat(arm, n),
        "phenotype": _categories(cohort.scenario.phenotypes, lat.phenotype),
        "onset_region": region,
        "onset_side": side,
        "age_at_degeneration_years": lat.age_years,
        "age_at_onset_years": lat.age_years + onset / 12.0,
        "symptom_onset_month": onset,
        "first_visit_month": cohort.first_visit,
        "death_month": cohort.death_month,
        "death_cause": cause,
        "end_month": end,
        "lmn_speed": lat.lmn_speed,
        "umn_speed": lat.umn_speed,
        "lmn_onset_month": lat.lmn_onset.min(axis=1),
        "umn_onset_month": lat.umn_onset.min(axis=1),
        "reinnervation_capacity": lat.capacity,
        "reinnervation_time_constant_months": 1.0 / lat.adoption_rate,
        "symptom_threshold": lat.symptom_threshold,
        "respiratory_threshold": lat.respiratory_threshold,
        "referral_delay_months": lat.referral_delay,
        "final_diagnosis": final,
        "screenings": cohort.screenings,
        "enrolled": np.isfinite(cohort.enrolment),
        "enrolment_month": cohort.enrolment,
        "dropout_month": cohort.dropout_month(),
    }
    out = {"patients": _table("patients", patients)}

    visits = _concat(cohort.examiner.visit_rows)
    if visits:
        visits["arm"] = _repeat(arm, len(visits["month"]))
        visits["trial_month"] = _trial_month(visits, cohort.ids, cohort.enrolment)
        order = np.lexsort((visits["month"], visits["patient_id"]))
        out["visits"] = _table("visits", visits, order)
    else:
        out["visits"] = SCHEMAS["visits"].empty_table()

    mus = _concat(cohort.examiner.muscle_rows)
    if mus:
        m = mus.pop("muscle_index")
        body = cohort.body
        mus["arm"] = _repeat(arm, len(m))
        mus["trial_month"] = _trial_month(mus, cohort.ids, cohort.enrolment)
        mus["muscle"] = _categories([x.name for x in body.muscles], m)
        mus["region"] = _categories([x.region for x in body.muscles], m)
        mus["side"] = _categories([x.side for x in body.muscles], m)
        rg = mus["reflex_grade"]
        mus["reflex_grade"] = pa.array(rg, mask=rg < 0, type=I8)
        mus["mep_present"] = pa.array(np.asarray(mus["mep_present"], dtype=object), type=BOOL)
        order = np.lexsort((m, mus["month"], mus["patient_id"]))
        out["muscles"] = _table("muscles", mus, order)
    else:
        out["muscles"] = SCHEMAS["muscles"].empty_table()

    ev = _concat(cohort.events)
    if ev:
        ev["arm"] = _repeat(arm, len(ev["month"]))
        kind = np.array([_EVENT_ORDER[e] for e in ev["event"]])
        order = np.lexsort((kind, ev["month"], ev["patient_id"]))
        out["events"] = _table("events", ev, order)
    else:
        out["events"] = SCHEMAS["events"].empty_table()

    if cohort.scenario.exam.scans.muscles:  # the scans table exists only when asked for
        sc = _concat(cohort.examiner.scan_rows)
        if sc:
            m = sc.pop("muscle_index")
            body = cohort.body
            sc["arm"] = _repeat(arm, len(m))
            sc["muscle"] = _categories([x.name for x in body.muscles], m)
            sc["side"] = _categories([x.side for x in body.muscles], m)
            order = np.lexsort((-sc["stimulus_ma"], m, sc["month"], sc["patient_id"]))
            out["scans"] = _table("scans", sc, order)
        else:
            out["scans"] = SCHEMAS["scans"].empty_table()
    return out


_EVENT_ORDER = {
    "region_onset": 0,
    "first_visit": 1,
    "diagnosis": 2,
    "enrolment": 3,
    "dropout": 4,
    "death": 5,
}


def _trial_month(rows: dict[str, np.ndarray], ids: np.ndarray, enrolment: np.ndarray):
    """Months since randomisation for each row (inf, i.e. null, before it or never)."""
    order = np.argsort(ids)
    start = enrolment[order[np.searchsorted(ids[order], rows["patient_id"])]]
    since = rows["month"] - start
    return np.where(since >= -1e-9, np.maximum(since, 0.0), np.inf)


def schema_markdown() -> str:
    """The schema section of docs/running/output.md: one table per output table, every column
    with its unit."""
    parts = []
    for name, cols in COLUMNS.items():
        parts.append(f"#### `{name}/`\n\n| column | type | meaning (unit) |\n|---|---|---|")
        parts.extend(f"| `{c}` | {t} | {doc} |" for c, t, doc in cols)
        parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    print(schema_markdown())
