"""The calibration estimators: each target id's published figure computed from runs' tables.

Each target in ``validation/targets.toml`` (:mod:`analysis.targets`) names a quantity
that clinicians have measured (survival, functional decline, diagnostic delay, healthy test
values, ...). Here every target id has an *estimator*: a function of one or more runs (the dict
from :func:`analysis.open_run`, or a folder) that computes the same quantity from the tables,
with a 95% confidence interval (:mod:`analysis.intervals`), so that
:func:`analysis.targets.evaluate` can judge whether the simulation lands in the published range.
Nothing here reads the engine: only the tables an analyst would read.

Runs are named: a scenario's natural history by the scenario's name (``als_natural_history``),
and the same cohort examined from month 0 (``visits.start = "degeneration"``, as in studies of
presymptomatic carriers) by ``<scenario>@month0``. :data:`NEEDS` says which runs each target
reads; targets with ``scenario = "any"`` (healthy values) read the month-0 visits of the ALS
cohort, which are healthy because nothing has degenerated yet.

Definitions (the choices a paper would state in its methods):

- Survival: Kaplan-Meier from symptom onset, death of any cause, censored at ``end_month``
  (:mod:`analysis.survival`); the median's interval is Brookmeyer-Crowley, differences and
  bootstrapped quantities resample patients (:data:`analysis.intervals.BOOTSTRAP`
  replicates, fixed seed).
- Diagnostic delay: months from symptom onset to the first visit whose diagnosis is ``ALS``
  (``events``), median over the patients so diagnosed, distribution-free interval.
- ALSFRS-R and SVC slopes: each patient's least-squares slope over the visits in the first
  12 months from the first visit (PRO-ACT and EMPOWER pool trials of 6-18 months), at least 3
  visits (:func:`analysis.trajectories.patient_slopes`, the slope the sweep outcomes report
  too); the mean over patients, t interval. PLS (Lester 2025, years of clinic follow-up) uses
  the first :data:`PLS_WINDOW_MONTHS` and reports points per year.
- Onset site (bulbar versus limb): where the first symptoms appeared (``region_onset``
  events), as a clinic records it, not the latent region where degeneration started.
- MUNIX decline: per patient the sum of MUNIX over the muscles with published MUNIX (APB, ADM,
  biceps, TA, both sides), its least-squares slope over the first 15 months of follow-up
  (Neuwirth 2015 followed 15 months) as % of the first visit's sum, mean over patients.
- Reinnervation hides loss: in a cohort visited from month 0, every muscle's CMAP relative to
  its own month-0 value; the median over examinations in bins of the true fraction of units
  lost (20 bins), and the loss at which that median first falls below 0.8 (interpolated).
- Healthy MUNE, MUNIX, CMCT: means over the month-0 examinations (both sides).
- MUNIX test-retest CoV: consecutive visits of muscles with every unit still alive (so nothing
  changed but the measurement): ``sd(log(x2 / x1)) / sqrt(2)``.
- Fasciculations: mean biceps rate of ALS patients at visits where biceps is clinically strong
  (MRC 5) and weak (MRC < 5), over the healthy month-0 biceps rate (the model has no benign
  fasciculation syndrome; healthy rest is its reference).
- TMS: a target is abnormal when its MEP is absent at maximal output or its CMCT exceeds the
  upper limit of normal, which the laboratory sets from its own controls: the healthy month-0
  mean + 2.5 SD of that muscle (:data:`TMS_LIMIT_SD`). ALS at the first visit, ADM and TA both
  sides as recorded by Claus 1995 and Floyd 2009 (:data:`TMS_TARGETS`); inexcitability as
  Dharmadasa 2021 recorded it, no MEP in one or more of four limbs (APB and TA, both sides:
  :data:`INEXCITABLE_TARGETS`); PLS at each patient's first visit 4 years or more after
  symptom onset, definite PLS (:data:`PLS_TMS_MONTHS`).
- CMAP at presentation: among patients whose first symptoms were in a limb (the earliest
  ``region_onset`` event: cervical or lumbosacral, and its side), the share whose first-visit
  CMAP of that limb's distal muscle (:data:`DISTAL_MUSCLE`) is below the lower limit of normal
  (:data:`LLN_QUANTILE` of the healthy month-0 CMAPs of that muscle). Wilson interval.
- MUNE decline: as the MUNIX decline, for the MUNE sum over :data:`MUNE_MUSCLES` (both sides),
  over the first :data:`MUNE_WINDOW_MONTHS` of follow-up, % of the first visit per month.
- MUNE at the first visit: mean first-visit MUNE of the onset limb's distal muscle on the
  onset side (the nerve "based on clinical examination", Shefner 2011) over the mean healthy
  month-0 MUNE of the same muscles; patient bootstrap.
- Pyramidal signs at the first visit (Alvarez 2018): among patients ever diagnosed ALS, the
  share with an extensor plantar response, with a tendon reflex graded brisk or clonus (biceps
  or knee jerk, either side), with spastic tone in a limb, and with none of the three. PLS
  (Santos Silva 2024): spastic tone in a leg at each patient's first visit
  :data:`PLS_SIGNS_MONTHS` or more after symptom onset. Wilson intervals.
- Split hand: share of ALS patients with APB/ADM CMAP ratio below 0.6 in either hand at the
  visit where ALS criteria are first met (the diagnostic nerve conduction study), among those
  with hand involvement (APB CMAP below the healthy month-0 5th percentile) and among all;
  and the median ratio there against the healthy month-0 median.

- Presenting LMN-only: in the MND population, per patient the first visit with a diagnosis
  (``visits.diagnosis``); the share of PMA among first diagnoses of PMA or ALS, and among
  those first diagnosed PMA the share diagnosed ALS within :data:`PMA_CONVERSION_MONTHS` of it
  (UMN signs appeared), crude (death or the run's end first counts as no conversion, as in
  Kim 2009). Wilson intervals.
- Spread to a second region: per patient the months from the first symptomatic region to the
  next one among bulbar, arms and legs (``region_onset`` events; the thoracic region is not a
  region of first symptoms in the series), over the patients who reached one; mean, t interval.
  Rapid spread: a second region within :data:`RAPID_SPREAD_MONTHS`; its five-year survival is
  the share alive 60 months after onset among those followed that long or dead before.
- Regions preserved when breathing becomes symptomatic: per patient of those series' onset
  types, the first visit with an ALSFRS-R respiratory item below normal, and how many of the
  two other regions (of bulbar, arms, legs) have no ``region_onset`` by then; mean per onset
  region (arms, legs, bulbar), t intervals.

Targets without a published range get a derived one
(:data:`analysis.targets.DERIVED_RANGES`, stated in the report); ``kind = "input"`` targets
(population mix, onset sites) are reported but not judged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from analysis import spread
from analysis.compensation import first_below
from analysis.intervals import (
    BOOTSTRAP,
    bootstrap_rng,
    cluster_bootstrap,
    cluster_codes,
    km_median,
    mean_ci,
    median_ci,
    percentile_ci,
    share_ci,
    weighted_mean,
    weighted_median,
)
from analysis.io import ENGINE, Run, frames, onset_sites, patients, strings
from analysis.least_squares import slopes_by
from analysis.survival import kaplan_meier_estimate, km_medians, survival_at, survival_times
from analysis.trajectories import SLOPE_MIN_VISITS, SLOPE_WINDOW_MONTHS, patient_slopes

#: Months of follow-up over which PLS slopes are fitted (a clinic cohort followed for years).
PLS_WINDOW_MONTHS = 60.0
#: Months of follow-up for the MUNIX decline (Neuwirth 2015: 15 months).
MUNIX_WINDOW_MONTHS = 15.0
#: Muscles with published healthy MUNIX (Cao 2020), in the order of target ``munix_healthy``.
MUNIX_MUSCLES = ("APB", "ADM", "biceps", "TA")
#: Months after a first PMA diagnosis within which UMN signs are counted (Kim 2009: 61).
PMA_CONVERSION_MONTHS = 61.0
#: Regions of first and later symptoms in the spread series (Fujimura-Kiyono 2011).
SPREAD_REGIONS = ("bulbar", "cervical", "lumbosacral")
#: A second region within this many months of the first is rapid spread (Fujimura-Kiyono 2011).
RAPID_SPREAD_MONTHS = 3.0
#: ALSFRS-R respiratory subscore with every item normal (3 items of 4 points).
ALSFRS_RESPIRATORY_NORMAL = 12
#: Fraction of the baseline CMAP that marks a fall (target ``reinnervation_hides_loss``).
CMAP_FALL = 0.8
#: Upper limit of normal CMCT: the controls' mean + this many SDs (CMCT_LIMIT_SD of the clinic).
TMS_LIMIT_SD = 2.5
#: TMS targets of the ALS and PLS series (ADM and TA, both sides: Claus 1995, Floyd 2009).
TMS_TARGETS = ("ADM", "TA")
#: Limbs tested for inexcitability (hand and leg, both sides: Dharmadasa 2021).
INEXCITABLE_TARGETS = ("APB", "TA")
#: PLS patients are judged at their first visit this many months after symptom onset: definite
#: PLS (2020 consensus, Turner JNNP 91:373), as the published TMS series (established PLS:
#: Pringle 1992's median disease duration was 19 years) examined them.
PLS_TMS_MONTHS = 48.0
#: Muscles whose MUNE sum the MUNE decline follows (as the MUNIX decline).
MUNE_MUSCLES = MUNIX_MUSCLES
#: Months of follow-up for the MUNE decline (the series followed 8-16 months).
MUNE_WINDOW_MONTHS = 12.0
#: The distal muscle of each limb region whose CMAP a first nerve conduction study records
#: (median nerve to APB; peroneal nerve to EDB).
DISTAL_MUSCLE = {"cervical": "APB", "lumbosacral": "EDB"}
#: Lower limit of normal: this quantile of the healthy month-0 CMAPs of the same muscle
#: (2.5%: mean - 1.96 SD for a normal distribution, the usual laboratory convention).
LLN_QUANTILE = 0.025
#: PLS patients' bedside signs are read at their first visit this many months after symptom
#: onset: the median symptom duration at first observation of Santos Silva 2024 (3 years).
PLS_SIGNS_MONTHS = 36.0


@dataclass(frozen=True)
class Estimate:
    """A simulated figure with its 95% confidence interval.

    Attributes:
        value: the estimate (one number per component of the target's value).
        lower, upper: the interval per component (None where not estimable).
        n: patients the estimate rests on.
        detail: a short note (e.g. the share of patients diagnosed).
        checks: extra pass/fail conditions beside the ranges (name -> passed).
    """

    value: tuple[float | None, ...]
    lower: tuple[float | None, ...]
    upper: tuple[float | None, ...]
    n: int
    detail: str = ""
    checks: dict[str, bool] = field(default_factory=dict)


def _est(value, lower, upper, n: int, detail: str = "", checks=None) -> Estimate:
    def tup(x):
        if isinstance(x, tuple | list):
            return tuple(None if v is None or not np.isfinite(v) else float(v) for v in x)
        return (None if x is None or not np.isfinite(x) else float(x),)

    return Estimate(tup(value), tup(lower), tup(upper), int(n), detail, dict(checks or {}))


# ---------------------------------------------------------------------------------------------
# Shared queries


def _survival(run: Run, by: Sequence[str] = ()) -> pl.DataFrame:
    """Survival times in patient order (a bootstrap over the rows then draws the same
    patients whatever the order of the files)."""
    return survival_times(run, list(by) or None).sort("patient_id").collect(engine=ENGINE)


def _km(run: Run) -> Estimate:
    st = _survival(run)
    km = km_medians(kaplan_meier_estimate(st))
    row = km.row(0, named=True)
    return _est(row["median"], row["lower"], row["upper"], st.height,
                f"{row['deaths']} deaths of {row['patients']}")


def _slope_estimate(run: Run, column: str, window: float, scale: float) -> Estimate:
    s = patient_slopes(run, column, window).collect(engine=ENGINE)
    m, lo, hi = mean_ci(s["slope"].to_numpy() * scale)
    return _est(m, lo, hi, s.height, f"per-patient OLS over first {window:g} months of follow-up")


def _muscles(run: Run, columns: Sequence[str], muscles: Sequence[str] | None = None):
    lf = frames(run)["muscles"].select("patient_id", "month", "muscle", "side", *columns)
    lf = strings(lf, ["muscle", "side"])
    if muscles is not None:
        lf = lf.filter(pl.col("muscle").is_in(list(muscles)))
    return lf


def _month0(run: Run, column: str, muscles: Sequence[str] | None) -> pl.DataFrame:
    return (
        _muscles(run, [column, "units_alive_fraction"], muscles)
        .filter((pl.col("month") == 0) & pl.col(column).is_not_null())
        .collect(engine=ENGINE)
    )


def _als_diagnosis(run: Run) -> pl.DataFrame:
    """Per symptomatic patient: onset and the month of the first visit diagnosing ALS."""
    dx = (
        strings(frames(run)["events"].select("patient_id", "event", "month", "detail"),
                ["event", "detail"])
        .filter((pl.col("event") == "diagnosis") & (pl.col("detail") == "ALS"))
        .group_by("patient_id")
        .agg(pl.col("month").min().alias("als_month"))
    )
    return (
        patients(run, ["symptom_onset_month", "phenotype"])
        .filter(pl.col("symptom_onset_month").is_not_null())
        .join(dx, on="patient_id", how="left")
        .collect(engine=ENGINE)
    )


# ---------------------------------------------------------------------------------------------
# Estimators, one per target id


def als_survival_median_months(runs: Mapping[str, Run]) -> Estimate:
    """Kaplan-Meier median survival from symptom onset (months), ALS natural history."""
    return _km(runs["als_natural_history"])


def als_five_year_survival(runs: Mapping[str, Run]) -> Estimate:
    """Kaplan-Meier survival 60 months after symptom onset, with its log-log interval."""
    run = runs["als_natural_history"]
    s = survival_at(run, [60.0], by=None).row(0, named=True)
    return _est(s["survival"], s["lower"], s["upper"], _survival(run).height,
                f"{s['at_risk']} still followed at 60 months")


def _median_difference(st: pl.DataFrame, a: np.ndarray, b: np.ndarray) -> tuple[float, ...]:
    """Kaplan-Meier median survival of the patients ``a`` minus those ``b`` (boolean masks
    over ``st``'s rows), with a patient-bootstrap 95% interval, and both medians."""
    t, d = st["months"].to_numpy(), st["died"].to_numpy()
    diff = km_median(t[a], d[a]) - km_median(t[b], d[b])
    rng = bootstrap_rng()
    reps = np.empty(BOOTSTRAP)
    ia, ib = np.flatnonzero(a), np.flatnonzero(b)
    for k in range(BOOTSTRAP):
        sa = rng.choice(ia, len(ia))
        sb = rng.choice(ib, len(ib))
        reps[k] = km_median(t[sa], d[sa]) - km_median(t[sb], d[sb])
    lo, hi = percentile_ci(reps)
    return diff, lo, hi, km_median(t[a], d[a]), km_median(t[b], d[b])


def bulbar_onset_survival_shorter(runs: Mapping[str, Run]) -> Estimate:
    """Median survival of bulbar-onset minus limb-onset ALS (months), patient bootstrap.

    The onset site is clinical: where the first symptoms appeared (``region_onset`` events),
    not the latent region where degeneration started.
    """
    st = _survival(runs["als_natural_history"], ["onset_site"])
    bulbar = (st["onset_site"] == "bulbar").to_numpy()
    limb = (st["onset_site"] == "limb").to_numpy()
    diff, lo, hi, mb, ml = _median_difference(st, bulbar, limb)
    return _est(diff, lo, hi, int(bulbar.sum() + limb.sum()),
                f"bulbar {mb:.1f} (n={bulbar.sum()}), limb {ml:.1f} (n={limb.sum()})")


def leg_onset_survival_difference(runs: Mapping[str, Run]) -> Estimate:
    """Median survival of leg-onset minus arm-onset ALS (months), patient bootstrap; the
    onset limb is where the first symptoms appeared (:func:`_onset_limb`)."""
    run = runs["als_natural_history"]
    st = (
        survival_times(run, None)
        .join(_onset_limb(run), on="patient_id", how="inner")
        .sort("patient_id")
        .collect(engine=ENGINE)
    )
    legs = (st["region"] == "lumbosacral").to_numpy()
    arms = (st["region"] == "cervical").to_numpy()
    diff, lo, hi, ml, ma = _median_difference(st, legs, arms)
    return _est(diff, lo, hi, int(legs.sum() + arms.sum()),
                f"legs {ml:.1f} (n={legs.sum()}), arms {ma:.1f} (n={arms.sum()})")


def als_alsfrs_slope(runs: Mapping[str, Run]) -> Estimate:
    """Mean per-patient ALSFRS-R slope (points/month) over the first year of follow-up."""
    return _slope_estimate(runs["als_natural_history"], "alsfrs_r", SLOPE_WINDOW_MONTHS, 1.0)


def als_svc_slope(runs: Mapping[str, Run]) -> Estimate:
    """Mean per-patient SVC slope (% predicted/month) over the first year of follow-up."""
    return _slope_estimate(runs["als_natural_history"], "svc_percent", SLOPE_WINDOW_MONTHS, 1.0)


def diagnostic_delay_median_months(runs: Mapping[str, Run]) -> Estimate:
    """Median months from symptom onset to the first visit meeting ALS criteria."""
    p = _als_diagnosis(runs["als_natural_history"])
    delay = (p["als_month"] - p["symptom_onset_month"]).drop_nulls().to_numpy()
    m, lo, hi = median_ci(delay)
    return _est(m, lo, hi, len(delay),
                f"{len(delay)} of {p.height} symptomatic patients ever diagnosed ALS")


def pls_survival_median_years(runs: Mapping[str, Run]) -> Estimate:
    """Kaplan-Meier median survival from onset (years), PLS natural history."""
    e = _km(runs["pls_natural_history"])
    conv = tuple(None if v is None else v / 12.0 for v in e.value + e.lower + e.upper)
    return Estimate(conv[:1], conv[1:2], conv[2:3], e.n, e.detail)


def pls_alsfrs_slope(runs: Mapping[str, Run]) -> Estimate:
    """Mean per-patient ALSFRS-R slope (points/year) over the first years of follow-up, PLS."""
    return _slope_estimate(runs["pls_natural_history"], "alsfrs_r", PLS_WINDOW_MONTHS, 12.0)


def pma_survival_median_months(runs: Mapping[str, Run]) -> Estimate:
    """Kaplan-Meier median survival from onset of weakness (months), PMA natural history."""
    return _km(runs["pma_natural_history"])


def onset_region_mix(runs: Mapping[str, Run]) -> Estimate:
    """Shares of limb, bulbar and trunk onset among symptomatic patients, by the site of the
    first symptoms (an input, reported with Wilson intervals)."""
    p = onset_sites(runs["als_natural_history"]).collect(engine=ENGINE)
    n = p.height
    parts = [share_ci(int((p["onset_site"] == s).sum()), n) for s in ("limb", "bulbar", "trunk")]
    return _est(*[tuple(x[i] for x in parts) for i in range(3)], n)


def mnd_phenotype_mix(runs: Mapping[str, Run]) -> Estimate:
    """Shares of latent ALS, PMA and PLS (an input, reported with Wilson intervals)."""
    p = patients(runs["mnd_population"], ["phenotype"]).collect(engine=ENGINE)
    n = p.height
    parts = [share_ci(int((p["phenotype"] == s).sum()), n) for s in ("ALS", "PMA", "PLS")]
    return _est(*[tuple(x[i] for x in parts) for i in range(3)], n)


def reinnervation_hides_loss(runs: Mapping[str, Run], bins: int = 20, min_n: int = 5) -> Estimate:
    """Fraction of units lost when the median CMAP (over its month-0 value) falls below 0.8."""
    m = _muscles(runs["als_natural_history@month0"], ["cmap_mv", "units_alive_fraction"])
    m = m.collect(engine=ENGINE)
    base = m.filter(pl.col("month") == 0).select(
        "patient_id", "muscle", "side", pl.col("cmap_mv").alias("_b")
    )
    r = (
        m.join(base, on=["patient_id", "muscle", "side"], how="inner")
        .filter(pl.col("_b") > 0)
        .select(
            "patient_id",
            (1.0 - pl.col("units_alive_fraction")).alias("lost"),
            (pl.col("cmap_mv") / pl.col("_b")).alias("rel"),
        )
    )
    lost, rel = r["lost"].to_numpy(), r["rel"].to_numpy()
    b = np.clip(np.floor(lost * bins).astype(int), 0, bins - 1)
    centres = (np.arange(bins) + 0.5) / bins
    groups = cluster_codes(r["patient_id"].to_numpy())

    def stat(w: np.ndarray) -> float:
        x, y = [], []
        for k in range(bins):
            sel = b == k
            if w[sel].sum() >= min_n:
                x.append(centres[k])
                y.append(weighted_median(rel[sel], w[sel]))
        c = first_below(np.array(x), np.array(y), CMAP_FALL)
        return math.nan if c is None else c

    point = stat(np.ones(len(lost)))
    lo, hi = percentile_ci(cluster_bootstrap(groups, stat))
    return _est(point, lo, hi, int(groups.max()) + 1 if len(groups) else 0,
                "median CMAP over month-0 CMAP against true units lost, all muscles")


def mune_healthy_thenar(runs: Mapping[str, Run]) -> Estimate:
    """Mean APB MUNE at month 0 (healthy), both sides."""
    m = _month0(runs["als_natural_history@month0"], "mune", ["APB"])
    mean, lo, hi = mean_ci(m["mune"].to_numpy())
    sd = float(m["mune"].std()) if m.height > 1 else math.nan
    return _est(mean, lo, hi, m["patient_id"].n_unique(), f"SD {sd:.0f}")


def munix_healthy(runs: Mapping[str, Run]) -> Estimate:
    """Mean MUNIX at month 0 (healthy) in APB, ADM, biceps and TA, both sides."""
    m = _month0(runs["als_natural_history@month0"], "munix", MUNIX_MUSCLES)
    vals, los, his, sds = [], [], [], []
    for name in MUNIX_MUSCLES:
        x = m.filter(pl.col("muscle") == name)["munix"].to_numpy()
        mean, lo, hi = mean_ci(x)
        vals.append(mean)
        los.append(lo)
        his.append(hi)
        sds.append(float(np.std(x, ddof=1)) if len(x) > 1 else math.nan)
    return _est(tuple(vals), tuple(los), tuple(his), m["patient_id"].n_unique(),
                "SD " + "/".join(f"{s:.0f}" for s in sds))


def _first_visit(run: Run) -> pl.LazyFrame:
    return patients(run, ["first_visit_month"]).filter(pl.col("first_visit_month").is_not_null())


def _sum_score_decline(run: Run, column: str, muscles: Sequence[str], window: float) -> Estimate:
    """Mean per-patient decline (% of the first visit's value per month) of a sum score: the
    sum of ``column`` over ``muscles`` (both sides) at each visit of the first ``window``
    months of follow-up, its least-squares slope over the first visit's sum."""
    s = (
        _muscles(run, [column], muscles)
        .filter(pl.col(column).is_not_null() & pl.col(column).is_not_nan())
        .group_by("patient_id", "month")
        .agg(pl.col(column).sum().alias("sum"))
        .join(_first_visit(run), on="patient_id", how="inner")
        .filter(pl.col("month") - pl.col("first_visit_month") <= window + 1e-9)
        .sort("patient_id", "month")
        .collect(engine=ENGINE)
    )
    sl = slopes_by(s, "sum", ["patient_id"], min_points=SLOPE_MIN_VISITS).filter(
        pl.col("first") > 0
    ).collect(engine=ENGINE)
    pct = -100.0 * (sl["slope"] / sl["first"]).to_numpy()
    m, lo, hi = mean_ci(pct)
    return _est(m, lo, hi, sl.height,
                f"sum of {', '.join(muscles)} (both sides), first {window:g} months")


def munix_decline_als(runs: Mapping[str, Run]) -> Estimate:
    """Mean per-patient decline of the MUNIX sum score (% of first visit per month)."""
    return _sum_score_decline(
        runs["als_natural_history"], "munix", MUNIX_MUSCLES, MUNIX_WINDOW_MONTHS
    )


def munix_test_retest_cov(runs: Mapping[str, Run]) -> Estimate:
    """MUNIX CoV (%) between consecutive visits of muscles with every unit alive."""
    m = (
        _muscles(runs["als_natural_history@month0"], ["munix", "units_alive_fraction",
                                                       "fibres_fraction"])
        .filter(pl.col("munix") > 0)
        .sort("patient_id", "muscle", "side", "month")
        .with_columns(
            pl.col("munix").shift(1).over(["patient_id", "muscle", "side"]).alias("_prev"),
            pl.col("fibres_fraction").shift(1).over(["patient_id", "muscle", "side"])
            .alias("_fprev"),
        )
        .filter(
            pl.col("_prev").is_not_null()
            & (pl.col("units_alive_fraction") >= 1.0)
            & (pl.col("fibres_fraction") == pl.col("_fprev"))
        )
        .select("patient_id", (pl.col("munix") / pl.col("_prev")).log().alias("d"))
        .collect(engine=ENGINE)
    )
    d = m["d"].to_numpy()
    groups = cluster_codes(m["patient_id"].to_numpy())

    def stat(w: np.ndarray) -> float:
        mu = weighted_mean(d, w)
        return 100.0 * math.sqrt(weighted_mean((d - mu) ** 2, w) / 2.0)

    point = stat(np.ones(len(d)))
    lo, hi = percentile_ci(cluster_bootstrap(groups, stat))
    return _est(point, lo, hi, int(groups.max()) + 1 if len(groups) else 0,
                f"{len(d)} pairs of consecutive visits")


def _cmct(runs: Mapping[str, Run], muscles: Sequence[str]) -> Estimate:
    m = _month0(runs["als_natural_history@month0"], "cmct_ms", muscles)
    mean, lo, hi = mean_ci(m["cmct_ms"].to_numpy())
    sd = float(m["cmct_ms"].std()) if m.height > 1 else math.nan
    return _est(mean, lo, hi, m["patient_id"].n_unique(), f"SD {sd:.2f} ms")


def cmct_normal_upper_ms(runs: Mapping[str, Run]) -> Estimate:
    """Mean CMCT to APB at month 0 (healthy), ms."""
    return _cmct(runs, ["APB"])


def cmct_normal_lower_ms(runs: Mapping[str, Run]) -> Estimate:
    """Mean CMCT to EDB and TA at month 0 (healthy), ms."""
    return _cmct(runs, ["EDB", "TA"])


def _tms_limits(runs: Mapping[str, Run]) -> pl.DataFrame:
    """Per TMS target muscle: the controls' CMCT upper limit of normal (month-0 mean +
    :data:`TMS_LIMIT_SD` SD, both sides), as a laboratory sets it from its own controls."""
    m = _month0(runs["als_natural_history@month0"], "cmct_ms", None)
    return m.group_by("muscle").agg(
        (pl.col("cmct_ms").mean() + TMS_LIMIT_SD * pl.col("cmct_ms").std()).alias("limit")
    )


def _tms_at(run: Run, visits: pl.DataFrame, limits: pl.DataFrame,
            muscles: Sequence[str]) -> pl.DataFrame:
    """Per patient at the chosen visit (``visits``: patient_id, month): whether any of
    ``muscles`` (both sides) has no MEP (``absent``) or a CMCT beyond the limit (``slow``)."""
    m = (
        _muscles(run, ["cmct_ms", "mep_present"], muscles)
        .join(visits.lazy(), on=["patient_id", "month"], how="inner")
        .join(limits.lazy(), on="muscle", how="inner")
        .collect(engine=ENGINE)
    )
    return m.group_by("patient_id").agg(
        (~pl.col("mep_present")).any().alias("absent"),
        (pl.col("cmct_ms") > pl.col("limit")).fill_null(False).any().alias("slow"),
    )


def _first_visits(run: Run) -> pl.DataFrame:
    """``patient_id`` and ``month`` of each patient's first visit."""
    return _first_visit(run).select(
        "patient_id", pl.col("first_visit_month").alias("month")
    ).collect(engine=ENGINE)


def _pls_visits(run: Run) -> pl.DataFrame:
    """Each PLS patient's first visit :data:`PLS_TMS_MONTHS` or more after symptom onset."""
    onset = patients(run, ["symptom_onset_month"]).filter(
        pl.col("symptom_onset_month").is_not_null()
    )
    return (
        frames(run)["visits"].select("patient_id", "month")
        .join(onset, on="patient_id", how="inner")
        .filter(pl.col("month") - pl.col("symptom_onset_month") >= PLS_TMS_MONTHS)
        .group_by("patient_id").agg(pl.col("month").min())
        .collect(engine=ENGINE)
    )


def _share(flags: pl.Series, detail: str) -> Estimate:
    k, n = int(flags.sum()), len(flags)
    share, lo, hi = share_ci(k, n)
    return _est(share, lo, hi, n, f"{k} of {n} patients; {detail}")


def _pyramidal_signs(run: Run, visits: pl.DataFrame) -> pl.DataFrame:
    """Per patient at the given visits (``patient_id``, ``month``), the pyramidal signs a
    neurologist records: ``babinski`` (extensor plantar response), ``hyperreflexia`` (a tendon
    reflex graded brisk or clonus: biceps or knee jerk, either side), ``spasticity`` (spastic
    tone in any limb examined) and ``ll_spasticity`` (spastic tone in a leg)."""
    at = visits.lazy()
    bedside = frames(run)["visits"].select("patient_id", "month", "babinski").join(
        at, on=["patient_id", "month"], how="inner"
    )
    limbs = (
        strings(_muscles(run, ["reflex_grade", "tone"]), ["tone"])
        .filter(pl.col("reflex_grade") >= 0)
        .join(at, on=["patient_id", "month"], how="inner")
        .group_by("patient_id")
        .agg(
            (pl.col("reflex_grade") >= 3).any().alias("hyperreflexia"),
            (pl.col("tone") == "spastic").any().alias("spasticity"),
            ((pl.col("tone") == "spastic") & (pl.col("muscle") == "quadriceps"))
            .any().alias("ll_spasticity"),
        )
    )
    return bedside.join(limbs, on="patient_id", how="inner").collect(engine=ENGINE)


def _als_first_visit_signs(runs: Mapping[str, Run]) -> pl.DataFrame:
    """Pyramidal signs at the first visit of the ALS patients (those ever diagnosed ALS, as
    Alvarez 2018 studied them)."""
    run = runs["als_natural_history"]
    als = _als_diagnosis(run).filter(pl.col("als_month").is_not_null()).select("patient_id")
    return _pyramidal_signs(run, _first_visits(run).join(als, on="patient_id", how="inner"))


def als_babinski_first_visit(runs: Mapping[str, Run]) -> Estimate:
    """Share of ALS patients with an extensor plantar response at the first visit."""
    signs = _als_first_visit_signs(runs)
    return _share(signs["babinski"], "Babinski sign at the first visit")


def als_hyperreflexia_first_visit(runs: Mapping[str, Run]) -> Estimate:
    """Share of ALS patients with a brisk tendon reflex or clonus at the first visit."""
    signs = _als_first_visit_signs(runs)
    return _share(signs["hyperreflexia"], "brisk biceps or knee jerk at the first visit")


def als_spasticity_first_visit(runs: Mapping[str, Run]) -> Estimate:
    """Share of ALS patients with spastic tone in a limb at the first visit."""
    signs = _als_first_visit_signs(runs)
    return _share(signs["spasticity"], "spastic tone at the first visit")


def als_no_pyramidal_signs_first_visit(runs: Mapping[str, Run]) -> Estimate:
    """Share of ALS patients with none of Babinski, hyperreflexia or spasticity at the first
    visit."""
    s = _als_first_visit_signs(runs)
    none = ~(s["babinski"] | s["hyperreflexia"] | s["spasticity"])
    return _share(none, "no Babinski, hyperreflexia or spasticity at the first visit")


def pls_leg_spasticity(runs: Mapping[str, Run]) -> Estimate:
    """Share of PLS patients with spastic tone in a leg at their first visit
    :data:`PLS_SIGNS_MONTHS` or more after symptom onset."""
    run = runs["pls_natural_history"]
    onset = patients(run, ["symptom_onset_month"]).filter(
        pl.col("symptom_onset_month").is_not_null()
    )
    visits = (
        frames(run)["visits"].select("patient_id", "month")
        .join(onset, on="patient_id", how="inner")
        .filter(pl.col("month") - pl.col("symptom_onset_month") >= PLS_SIGNS_MONTHS)
        .group_by("patient_id").agg(pl.col("month").min())
        .collect(engine=ENGINE)
    )
    signs = _pyramidal_signs(run, visits)
    return _share(signs["ll_spasticity"],
                  f"leg spasticity; hyperreflexia {signs['hyperreflexia'].mean():.2f}")


def als_tms_abnormal_first_visit(runs: Mapping[str, Run]) -> Estimate:
    """Share of ALS patients with an absent MEP or a CMCT beyond the controls' upper limit in
    ADM or TA (either side) at the first visit."""
    run = runs["als_natural_history"]
    per = _tms_at(run, _first_visits(run), _tms_limits(runs), TMS_TARGETS)
    return _share(per["absent"] | per["slow"],
                  f"absent MEP {per['absent'].mean():.2f}, prolonged CMCT {per['slow'].mean():.2f}")


def als_inexcitable_first_visit(runs: Mapping[str, Run]) -> Estimate:
    """Share of ALS patients with no MEP at maximal output in one or more limbs (APB or TA,
    either side) at the first visit."""
    run = runs["als_natural_history"]
    per = _tms_at(run, _first_visits(run), _tms_limits(runs), INEXCITABLE_TARGETS)
    return _share(per["absent"], "inexcitable in one or more of four limbs")


def pls_tms_abnormal(runs: Mapping[str, Run]) -> Estimate:
    """Share of PLS patients with an absent MEP or a CMCT beyond the controls' upper limit in
    ADM or TA (either side) at their first visit 4 years or more after symptom onset (definite
    PLS)."""
    run = runs["pls_natural_history"]
    per = _tms_at(run, _pls_visits(run), _tms_limits(runs), TMS_TARGETS)
    return _share(per["absent"] | per["slow"],
                  f"absent MEP {per['absent'].mean():.2f}, prolonged CMCT {per['slow'].mean():.2f}")


def fasciculation_rate_ratio(runs: Mapping[str, Run]) -> Estimate:
    """Biceps fasciculation rate in ALS (strong: MRC 5; weak: MRC < 5) over the healthy rate."""
    healthy = _month0(runs["als_natural_history@month0"], "fasciculations_per_min", ["biceps"])
    pts = patients(runs["als_natural_history"], ["symptom_onset_month"]).filter(
        pl.col("symptom_onset_month").is_not_null()
    )
    als = (
        _muscles(runs["als_natural_history"], ["fasciculations_per_min", "mrc_grade"], ["biceps"])
        .join(pts, on="patient_id", how="inner")
        .filter(pl.col("month") >= pl.col("symptom_onset_month"))
        .collect(engine=ENGINE)
    )
    h = healthy["fasciculations_per_min"].to_numpy()
    hg = cluster_codes(healthy["patient_id"].to_numpy())
    rate = als["fasciculations_per_min"].to_numpy()
    strong = (als["mrc_grade"] == 5).to_numpy()
    ag = cluster_codes(als["patient_id"].to_numpy())
    h_reps = cluster_bootstrap(hg, lambda w: weighted_mean(h, w))
    h0 = float(h.mean()) if len(h) else math.nan
    vals, los, his = [], [], []
    for sel in (strong, ~strong):
        point = float(rate[sel].mean()) / h0 if sel.any() and h0 > 0 else math.nan
        reps = cluster_bootstrap(ag, lambda w, sel=sel: weighted_mean(rate[sel], w[sel]))
        lo, hi = percentile_ci(reps / h_reps)
        vals.append(point)
        los.append(lo)
        his.append(hi)
    checks = {"weak above strong": bool(vals[1] > vals[0])}
    return _est(tuple(vals), tuple(los), tuple(his), int(ag.max()) + 1 if len(ag) else 0,
                f"healthy biceps {h0:.3f}/min; {int(strong.sum())} strong, "
                f"{int((~strong).sum())} weak examinations; weak/strong "
                f"{vals[1] / vals[0] if vals[0] else math.nan:.1f} (published 4)", checks)


def cmap_reduced_at_presentation(runs: Mapping[str, Run]) -> Estimate:
    """Share of limb-onset patients whose first-visit CMAP of the onset limb's distal muscle
    (same side) is below the lower limit of normal."""
    run = runs["als_natural_history"]
    healthy = _month0(runs["als_natural_history@month0"], "cmap_mv", list(DISTAL_MUSCLE.values()))
    lln = {
        name: float(healthy.filter(pl.col("muscle") == name)["cmap_mv"].quantile(LLN_QUANTILE))
        for name in DISTAL_MUSCLE.values()
    }
    first = _onset_limb(run)
    seen = (
        _muscles(run, ["cmap_mv"], list(DISTAL_MUSCLE.values()))
        .join(_first_visit(run), on="patient_id", how="inner")
        .filter(pl.col("month") == pl.col("first_visit_month"))
        .join(first, on=["patient_id", "muscle", "side"], how="inner")
        .collect(engine=ENGINE)
    )
    low = seen["cmap_mv"].to_numpy() < seen["muscle"].replace_strict(lln).to_numpy()
    share, lo, hi = share_ci(int(low.sum()), seen.height)
    return _est(share, lo, hi, seen.height,
                "LLN " + ", ".join(f"{k} {v:.1f} mV" for k, v in lln.items())
                + f"; {int(low.sum())} of {seen.height} limb-onset patients")


def mune_decline_als(runs: Mapping[str, Run]) -> Estimate:
    """Mean per-patient decline of the MUNE sum score (% of first visit per month)."""
    return _sum_score_decline(runs["als_natural_history"], "mune", MUNE_MUSCLES, MUNE_WINDOW_MONTHS)


def _onset_limb(run: Run) -> pl.LazyFrame:
    """Patients whose first symptoms were in a limb: that limb's distal muscle and side
    (:data:`DISTAL_MUSCLE`), from the earliest ``region_onset`` event (an observation)."""
    ev = strings(
        frames(run)["events"].select("patient_id", "event", "month", "region", "detail")
        .filter(pl.col("event") == "region_onset"), ["region", "detail"],
    )
    return (
        ev.sort("patient_id", "month")
        .group_by("patient_id")
        .agg(pl.col("region").first(), pl.col("detail").first().alias("side"))
        .filter(pl.col("region").is_in(list(DISTAL_MUSCLE)))
        .with_columns(pl.col("region").replace_strict(DISTAL_MUSCLE).alias("muscle"))
    )


def mune_first_visit_fraction(runs: Mapping[str, Run]) -> Estimate:
    """Mean first-visit MUNE of the onset limb's distal muscle (onset side: the nerve a
    clinician would study) over the mean healthy month-0 MUNE of the same muscles."""
    run = runs["als_natural_history"]
    healthy = _month0(runs["als_natural_history@month0"], "mune", list(DISTAL_MUSCLE.values()))
    first = (
        _muscles(run, ["mune"], list(DISTAL_MUSCLE.values()))
        .join(_first_visit(run), on="patient_id", how="inner")
        .filter(pl.col("month") == pl.col("first_visit_month"))
        .join(_onset_limb(run), on=["patient_id", "muscle", "side"], how="inner")
        .filter(pl.col("mune").is_not_null() & pl.col("mune").is_not_nan())
        .sort("patient_id", "muscle", "side")
        .collect(engine=ENGINE)
    )
    ref = {
        name: float(healthy.filter(pl.col("muscle") == name)["mune"].mean())
        for name in DISTAL_MUSCLE.values()
    }
    x = first["mune"].to_numpy()
    h = first["muscle"].replace_strict(ref).to_numpy()  # each patient's healthy reference
    point = float(x.mean() / h.mean()) if len(x) else math.nan
    rng = bootstrap_rng()
    reps = np.empty(BOOTSTRAP)
    for b in range(BOOTSTRAP):
        i = rng.choice(len(x), len(x))
        reps[b] = x[i].mean() / h[i].mean()
    lo, hi = percentile_ci(reps)
    return _est(point, lo, hi, len(x),
                f"onset-limb MUNE {x.mean():.0f} at the first visit vs healthy "
                + ", ".join(f"{k} {v:.0f}" for k, v in ref.items()))


def _hands(run: Run) -> pl.DataFrame:
    """Every hand examined with an ADM response (:func:`analysis.spread.split_hand`)."""
    return spread.split_hand(run, by=None).filter(pl.col("adm_mv") > 0).collect(engine=ENGINE)


def split_hand(runs: Mapping[str, Run]) -> Estimate:
    """Share with a split hand (APB/ADM < 0.6, either hand) among ALS patients with hand
    involvement (APB CMAP below the healthy 5th percentile, either hand) at diagnosis; checks:
    the share among all ALS patients there, and their median ratio against the healthy one."""
    run = runs["als_natural_history"]
    dx = _als_diagnosis(run).filter(pl.col("als_month").is_not_null())
    hands = _hands(run).join(dx.select("patient_id", pl.col("als_month").alias("month")),
                             on=["patient_id", "month"], how="inner")
    healthy = _hands(runs["als_natural_history@month0"]).filter(pl.col("month") == 0)
    low_apb = float(healthy["apb_mv"].quantile(0.05)) if healthy.height else math.nan
    per = hands.group_by("patient_id").agg(
        pl.col("apb_adm_ratio").min(), (pl.col("apb_mv") < low_apb).any().alias("involved")
    )
    involved = per.filter(pl.col("involved"))
    k, n = int((involved["apb_adm_ratio"] < spread.SPLIT_RATIO).sum()), involved.height
    share, lo, hi = share_ci(k, n)
    k_all, n_all = int((per["apb_adm_ratio"] < spread.SPLIT_RATIO).sum()), per.height
    share_all = k_all / n_all if n_all else math.nan
    als_med = float(hands["apb_adm_ratio"].median()) if hands.height else math.nan
    h_med = float(healthy["apb_adm_ratio"].median()) if healthy.height else math.nan
    return _est(share, lo, hi, n,
                f"{share_all:.2f} of all {n_all} ALS patients at diagnosis; median APB/ADM "
                f"{als_med:.2f} vs healthy {h_med:.2f} (difference {als_med - h_med:+.2f})",
                {"all ALS within 35-65%": bool(0.35 <= share_all <= 0.65),
                 "ALS ratio below healthy": bool(als_med < h_med)})


def _spread_onsets(run: Run) -> pl.DataFrame:
    """Symptom onsets in the regions of :data:`SPREAD_REGIONS` (``region_onsets`` rows, in
    order of onset), of the patients whose first symptoms were in one of them. Patients whose
    first symptoms were thoracic (respiratory or trunk onset) are left out: Fujimura-Kiyono's
    150 patients had upper-limb, lower-limb, bulbar or combined onsets only."""
    trunk_onset = onset_sites(run).filter(pl.col("onset_site") == "trunk").collect(engine=ENGINE)
    return (
        spread.region_onsets(run, by=None)
        .join(trunk_onset, on="patient_id", how="anti")
        .filter(pl.col("region").is_in(list(SPREAD_REGIONS)))
        .sort("patient_id", "months_since_onset")
    )


def _second_region(run: Run) -> pl.DataFrame:
    """Per patient of :func:`_spread_onsets` who reached a second region: ``gap`` (months from
    the first such region to the second), with ``months`` and ``died`` of survival."""
    ons = (
        _spread_onsets(run)
        .group_by("patient_id", maintain_order=True)
        .agg(pl.col("months_since_onset").head(2).alias("t"))
        .filter(pl.col("t").list.len() == 2)
        .select("patient_id", (pl.col("t").list.get(1) - pl.col("t").list.get(0)).alias("gap"))
    )
    return ons.join(survival_times(run, None).collect(engine=ENGINE), on="patient_id", how="inner")


def als_second_region_months(runs: Mapping[str, Run]) -> Estimate:
    """Mean months from the first symptomatic region to the second (bulbar, arms, legs)."""
    g = _second_region(runs["als_natural_history"])
    m, lo, hi = mean_ci(g["gap"].to_numpy())
    share_rapid = float((g["gap"] <= RAPID_SPREAD_MONTHS).mean()) if g.height else math.nan
    return _est(m, lo, hi, g.height,
                f"median {g['gap'].median():.1f}, SD {g['gap'].std():.1f}; "
                f"{share_rapid:.2f} within {RAPID_SPREAD_MONTHS:g} months")


def rapid_spread_five_year_survival(runs: Mapping[str, Run]) -> Estimate:
    """Share alive 5 years after onset among patients with a second region within
    :data:`RAPID_SPREAD_MONTHS` (followed 60 months or dead before), Wilson interval."""
    g = _second_region(runs["als_natural_history"]).filter(pl.col("gap") <= RAPID_SPREAD_MONTHS)
    known = g.filter((pl.col("months") >= 60.0) | pl.col("died"))
    alive = int((known["months"] >= 60.0).sum())
    p, lo, hi = share_ci(alive, known.height)
    return _est(p, lo, hi, known.height, f"{alive} of {known.height} rapid spreaders alive at 5 y")


def preserved_regions_at_respiratory_onset(runs: Mapping[str, Run]) -> Estimate:
    """Mean number of the other regions (of bulbar, arms, legs) still free of symptoms at the
    first visit with respiratory symptoms (an ALSFRS-R respiratory item below normal), per
    patient, by the region of first symptoms: arms, legs, bulbar (Fujimura-Kiyono 2011, Table
    1: normally preserved sites at the onset of respiratory symptoms, per patient)."""
    run = runs["als_natural_history"]
    ons = _spread_onsets(run)
    first = ons.group_by("patient_id", maintain_order=True).agg(pl.col("region").first())
    visits = frames(run)["visits"].select("patient_id", "month", "alsfrs_respiratory")
    breathless = (
        visits.filter(pl.col("alsfrs_respiratory") < ALSFRS_RESPIRATORY_NORMAL)
        .group_by("patient_id").agg(pl.col("month").min().alias("respiratory_month"))
        .join(patients(run, ["symptom_onset_month"]), on="patient_id", how="inner")
        .select("patient_id",
                (pl.col("respiratory_month") - pl.col("symptom_onset_month")).alias("at"))
        .collect(engine=ENGINE)
    )
    involved = (
        ons.join(breathless, on="patient_id", how="inner")
        .group_by("patient_id")
        .agg((pl.col("months_since_onset") <= pl.col("at")).sum().alias("involved"))
    )
    per = first.join(involved, on="patient_id", how="inner").with_columns(
        (len(SPREAD_REGIONS) - pl.col("involved")).alias("preserved")
    )
    vals, los, his, counts = [], [], [], []
    for region in ("cervical", "lumbosacral", "bulbar"):
        x = per.filter(pl.col("region") == region)["preserved"].to_numpy()
        m, lo, hi = mean_ci(x)
        vals.append(m), los.append(lo), his.append(hi), counts.append(len(x))
    return _est(tuple(vals), tuple(los), tuple(his), sum(counts),
                f"{counts[0]} arm-, {counts[1]} leg-, {counts[2]} bulbar-onset patients with "
                "respiratory symptoms at a visit")


def _first_diagnoses(run: Run) -> pl.DataFrame:
    """Per patient ever diagnosed PMA or ALS: the first diagnosis, its month, and the month
    of the first ALS diagnosis (null if never)."""
    v = strings(frames(run)["visits"].select("patient_id", "month", "diagnosis"), ["diagnosis"])
    dx = v.filter(pl.col("diagnosis").is_in(["PMA", "ALS"])).sort("patient_id", "month")
    return (
        dx.group_by("patient_id")
        .agg(
            pl.col("diagnosis").first().alias("first"),
            pl.col("month").first().alias("first_month"),
            pl.col("month").filter(pl.col("diagnosis") == "ALS").first().alias("als_month"),
        )
        .collect(engine=ENGINE)
    )


def pma_first_diagnosis_share(runs: Mapping[str, Run]) -> Estimate:
    """Share first diagnosed PMA among MND patients first diagnosed PMA or ALS."""
    d = _first_diagnoses(runs["mnd_population"])
    k = int((d["first"] == "PMA").sum())
    p, lo, hi = share_ci(k, d.height)
    return _est(p, lo, hi, d.height, f"{k} of {d.height} first diagnosed PMA")


def pma_conversion_share(runs: Mapping[str, Run]) -> Estimate:
    """Share of patients first diagnosed PMA who are diagnosed ALS (UMN signs) within
    :data:`PMA_CONVERSION_MONTHS` of that diagnosis."""
    d = _first_diagnoses(runs["mnd_population"]).filter(pl.col("first") == "PMA")
    gap = d["als_month"] - d["first_month"]
    k = int((gap <= PMA_CONVERSION_MONTHS).fill_null(False).sum())
    p, lo, hi = share_ci(k, d.height)
    median = gap.drop_nulls().median()
    median = math.nan if median is None else float(median)
    return _est(p, lo, hi, d.height,
                f"{k} of {d.height} converted; median {median:.1f} months to ALS among all")


#: Target id -> (estimator, runs it reads).
ESTIMATORS: dict[str, tuple[Callable[[Mapping[str, Run]], Estimate], tuple[str, ...]]] = {
    "als_survival_median_months": (als_survival_median_months, ("als_natural_history",)),
    "als_five_year_survival": (als_five_year_survival, ("als_natural_history",)),
    "bulbar_onset_survival_shorter": (bulbar_onset_survival_shorter, ("als_natural_history",)),
    "leg_onset_survival_difference": (leg_onset_survival_difference, ("als_natural_history",)),
    "als_alsfrs_slope": (als_alsfrs_slope, ("als_natural_history",)),
    "als_svc_slope": (als_svc_slope, ("als_natural_history",)),
    "diagnostic_delay_median_months": (diagnostic_delay_median_months, ("als_natural_history",)),
    "pls_survival_median_years": (pls_survival_median_years, ("pls_natural_history",)),
    "pls_alsfrs_slope": (pls_alsfrs_slope, ("pls_natural_history",)),
    "pma_survival_median_months": (pma_survival_median_months, ("pma_natural_history",)),
    "onset_region_mix": (onset_region_mix, ("als_natural_history",)),
    "mnd_phenotype_mix": (mnd_phenotype_mix, ("mnd_population",)),
    "reinnervation_hides_loss": (reinnervation_hides_loss, ("als_natural_history@month0",)),
    "mune_healthy_thenar": (mune_healthy_thenar, ("als_natural_history@month0",)),
    "munix_healthy": (munix_healthy, ("als_natural_history@month0",)),
    "munix_decline_als": (munix_decline_als, ("als_natural_history",)),
    "munix_test_retest_cov": (munix_test_retest_cov, ("als_natural_history@month0",)),
    "cmct_normal_upper_ms": (cmct_normal_upper_ms, ("als_natural_history@month0",)),
    "cmct_normal_lower_ms": (cmct_normal_lower_ms, ("als_natural_history@month0",)),
    "fasciculation_rate_ratio": (
        fasciculation_rate_ratio,
        ("als_natural_history", "als_natural_history@month0"),
    ),
    "split_hand": (split_hand, ("als_natural_history", "als_natural_history@month0")),
    "als_second_region_months": (als_second_region_months, ("als_natural_history",)),
    "pma_first_diagnosis_share": (pma_first_diagnosis_share, ("mnd_population",)),
    "pma_conversion_share": (pma_conversion_share, ("mnd_population",)),
    "rapid_spread_five_year_survival": (
        rapid_spread_five_year_survival, ("als_natural_history",)
    ),
    "preserved_regions_at_respiratory_onset": (
        preserved_regions_at_respiratory_onset, ("als_natural_history",)
    ),
    "als_tms_abnormal_first_visit": (
        als_tms_abnormal_first_visit,
        ("als_natural_history", "als_natural_history@month0"),
    ),
    "als_inexcitable_first_visit": (
        als_inexcitable_first_visit,
        ("als_natural_history", "als_natural_history@month0"),
    ),
    "pls_tms_abnormal": (
        pls_tms_abnormal, ("pls_natural_history", "als_natural_history@month0"),
    ),
    "cmap_reduced_at_presentation": (
        cmap_reduced_at_presentation,
        ("als_natural_history", "als_natural_history@month0"),
    ),
    "mune_decline_als": (mune_decline_als, ("als_natural_history",)),
    "als_babinski_first_visit": (als_babinski_first_visit, ("als_natural_history",)),
    "als_hyperreflexia_first_visit": (als_hyperreflexia_first_visit, ("als_natural_history",)),
    "als_spasticity_first_visit": (als_spasticity_first_visit, ("als_natural_history",)),
    "als_no_pyramidal_signs_first_visit": (
        als_no_pyramidal_signs_first_visit, ("als_natural_history",),
    ),
    "pls_leg_spasticity": (pls_leg_spasticity, ("pls_natural_history",)),
    "mune_first_visit_fraction": (
        mune_first_visit_fraction,
        ("als_natural_history", "als_natural_history@month0"),
    ),
}
#: Target id -> the named runs it reads.
NEEDS = {k: runs for k, (_, runs) in ESTIMATORS.items()}


__all__ = [
    "CMAP_FALL",
    "DISTAL_MUSCLE",
    "ESTIMATORS",
    "INEXCITABLE_TARGETS",
    "LLN_QUANTILE",
    "MUNE_MUSCLES",
    "MUNE_WINDOW_MONTHS",
    "MUNIX_MUSCLES",
    "MUNIX_WINDOW_MONTHS",
    "NEEDS",
    "PLS_SIGNS_MONTHS",
    "PLS_TMS_MONTHS",
    "PLS_WINDOW_MONTHS",
    "PMA_CONVERSION_MONTHS",
    "RAPID_SPREAD_MONTHS",
    "SPREAD_REGIONS",
    "TMS_LIMIT_SD",
    "TMS_TARGETS",
    "Estimate",
    "als_alsfrs_slope",
    "als_babinski_first_visit",
    "als_five_year_survival",
    "als_hyperreflexia_first_visit",
    "als_inexcitable_first_visit",
    "als_no_pyramidal_signs_first_visit",
    "als_second_region_months",
    "als_spasticity_first_visit",
    "als_survival_median_months",
    "als_svc_slope",
    "als_tms_abnormal_first_visit",
    "bulbar_onset_survival_shorter",
    "cmap_reduced_at_presentation",
    "cmct_normal_lower_ms",
    "cmct_normal_upper_ms",
    "diagnostic_delay_median_months",
    "fasciculation_rate_ratio",
    "leg_onset_survival_difference",
    "mnd_phenotype_mix",
    "mune_decline_als",
    "mune_first_visit_fraction",
    "mune_healthy_thenar",
    "munix_decline_als",
    "munix_healthy",
    "munix_test_retest_cov",
    "onset_region_mix",
    "pls_alsfrs_slope",
    "pls_leg_spasticity",
    "pls_survival_median_years",
    "pls_tms_abnormal",
    "pma_conversion_share",
    "pma_first_diagnosis_share",
    "pma_survival_median_months",
    "rapid_spread_five_year_survival",
    "reinnervation_hides_loss",
    "split_hand",
]
