"""Calibration targets: the published figures of ``targets.toml``, computed from runs' tables.

Each target in ``../shared/calibration/targets.toml`` names a quantity that clinicians have
measured (survival, functional decline, diagnostic delay, healthy test values, ...). Here every
target id has an *estimator*: a function of one or more runs (the dict from
:func:`analysis.open_run`, or a folder) that computes the same quantity from the tables, with a
95% confidence interval, so that :func:`evaluate` can judge whether the simulation lands in the
published range. Nothing here reads the engine: only the tables an analyst would read.

Runs are named: a scenario's natural history by the scenario's name (``als_natural_history``),
and the same cohort examined from month 0 (``visits.start = "degeneration"``, as in studies of
presymptomatic carriers) by ``<scenario>@month0``. :data:`NEEDS` says which runs each target
reads; targets with ``scenario = "any"`` (healthy values) read the month-0 visits of the ALS
cohort, which are healthy because nothing has degenerated yet.

Definitions (the choices a paper would state in its methods):

- Survival: Kaplan-Meier from symptom onset, death of any cause, censored at ``end_month``
  (:mod:`analysis.survival`); the median's interval is Brookmeyer-Crowley, differences and
  bootstrapped quantities resample patients (:data:`BOOTSTRAP` replicates, fixed seed).
- Diagnostic delay: months from symptom onset to the first visit whose diagnosis is ``ALS``
  (``events``), median over the patients so diagnosed, distribution-free interval.
- ALSFRS-R and SVC slopes: each patient's least-squares slope over the visits in the first
  :data:`SLOPE_WINDOW_MONTHS` months from the first visit (PRO-ACT and EMPOWER pool trials of
  6-18 months), at least 3 visits; the mean over patients, t interval. PLS (Lester 2025, years
  of clinic follow-up) uses the first :data:`PLS_WINDOW_MONTHS` and reports points per year.
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
- Split hand: share of ALS patients with APB/ADM CMAP ratio below 0.6 in either hand at the
  visit where ALS criteria are first met (the diagnostic nerve conduction study), among those
  with hand involvement (APB CMAP below the healthy month-0 5th percentile) and among all;
  and the median ratio there against the healthy month-0 median.

Targets without a published range get a derived one (:data:`DERIVED_RANGES`, stated in the
report); ``kind = "input"`` targets (population mix, onset sites) are reported but not judged.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np
import polars as pl

from analysis.compensation import _crossing
from analysis.io import ONSET_SITE, Run, frames, patients, strings
from analysis.survival import (
    first_below_half,
    kaplan_meier_estimate,
    km_medians,
    survival_at,
    survival_times,
)

#: Bootstrap replicates for intervals that have no closed form.
BOOTSTRAP = 200
#: Seed of the bootstrap (fixed: the same tables always give the same interval).
BOOTSTRAP_SEED = 20261125
#: Months of follow-up from the first visit over which ALS slopes are fitted.
SLOPE_WINDOW_MONTHS = 12.0
#: Months of follow-up over which PLS slopes are fitted (a clinic cohort followed for years).
PLS_WINDOW_MONTHS = 60.0
#: Least visits in that window for a patient's slope.
SLOPE_MIN_VISITS = 3
#: Months of follow-up for the MUNIX decline (Neuwirth 2015: 15 months).
MUNIX_WINDOW_MONTHS = 15.0
#: Muscles with published healthy MUNIX (Cao 2020), in the order of target ``munix_healthy``.
MUNIX_MUSCLES = ("APB", "ADM", "biceps", "TA")
#: APB/ADM CMAP ratio below which a hand is split (Lu 2022).
SPLIT_RATIO = 0.6
#: Fraction of the baseline CMAP that marks a fall (target ``reinnervation_hides_loss``).
CMAP_FALL = 0.8
Z95 = NormalDist().inv_cdf(0.975)

#: Ranges for targets published without one, with the reasoning shown in the report.
DERIVED_RANGES: dict[str, tuple[tuple[tuple[float, float], ...], str]] = {
    "munix_healthy": (
        ((171, 211), (159, 199), (160, 200), (132, 172)),
        "published mean +- half the published SD (about 40): a small effect size",
    ),
    "fasciculation_rate_ratio": (
        ((5, 20), (20, 80)),
        "within a factor 2 of each published ratio (20 patients, 5 controls)",
    ),
    "split_hand": (
        ((0.80, 0.95),),
        "share of ALS patients with hand involvement (APB CMAP below the healthy 5th percentile"
        " in either hand) whose APB/ADM ratio is below 0.6 at the visit first meeting ALS"
        " criteria: the 80-95% of the range note, from cohorts examined for a split hand; and,"
        " as checks, the share among all ALS patients there within the pooled 50% (95% CI"
        " 35-65%, 5 studies, n=339: split hand systematic review, Clin Neurophysiol 2022) and"
        " the ALS median ratio below the healthy one (pooled difference -0.38)",
    ),
}


# ---------------------------------------------------------------------------------------------
# Targets


@dataclass(frozen=True)
class Target:
    """One published figure from ``targets.toml``.

    Attributes:
        id: the target's id.
        scenario: the shipped scenario it refers to (``any``: any healthy cohort).
        quantity: what is measured, with its unit.
        value: the central published figure (a tuple for several numbers).
        range: (low, high) of what counts as consistent, or None.
        kind: ``emergent`` (the simulation must produce it) or ``input``.
        source: published sources.
        note: free text (``note`` and ``range_note`` of the file).
    """

    id: str
    scenario: str
    quantity: str
    value: tuple[float, ...]
    range: tuple[float, float] | None = None
    kind: str = "emergent"
    source: str = ""
    note: str = ""

    @property
    def scalar(self) -> bool:
        return len(self.value) == 1


def load_targets(path: str | Path) -> list[Target]:
    """The targets of a ``targets.toml`` file, in file order.

    Raises:
        OSError: the file cannot be read. ValueError: one line naming the file and what was
            expected (malformed TOML, no ``[[target]]`` tables, a target without ``id`` or
            ``value``, a value or range that is not numbers).
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: malformed TOML: {e}") from None
    tables = data.get("target", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ValueError(
            f"{path}: target: expected [[target]] tables with id and value, got {tables!r:.60}"
        )
    if not tables:
        raise ValueError(
            f"{path}: expected at least one [[target]] table with id and value; found none"
        )
    out = []
    for i, t in enumerate(tables):
        for key in ("id", "value"):
            if key not in t:
                raise ValueError(
                    f"{path}: target #{i + 1}: expected 'id' and 'value'; {key!r} is missing"
                )
        where = f"{path}: target #{i + 1} ({t['id']!r:.40})"
        value, rng = t["value"], t.get("range")
        if not all(map(_is_number, value if isinstance(value, list) else [value])):
            raise ValueError(
                f"{where}: value: expected a number or a list of numbers, got {value!r:.60}"
            )
        value = tuple(float(v) for v in value) if isinstance(value, list) else (float(value),)
        if rng is not None and not (
            isinstance(rng, list) and len(rng) == 2 and all(map(_is_number, rng))
        ):
            raise ValueError(f"{where}: range: expected [low, high], got {rng!r:.60}")
        note = "; ".join(str(t[k]) for k in ("note", "range_note") if k in t)
        out.append(
            Target(
                id=str(t["id"]),
                scenario=str(t.get("scenario", "any")),
                quantity=str(t.get("quantity", "")),
                value=value,
                range=(float(rng[0]), float(rng[1])) if rng else None,
                kind=str(t.get("kind", "emergent")),
                source=str(t.get("source", "")),
                note=note,
            )
        )
    return out


def _is_number(x: object) -> bool:
    """A TOML integer or float (not a boolean)."""
    return isinstance(x, int | float) and not isinstance(x, bool)


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
# Small statistics helpers (numpy, for bootstraps)


def _rng() -> np.random.Generator:
    return np.random.default_rng(BOOTSTRAP_SEED)


def km_median(months: np.ndarray, died: np.ndarray) -> float:
    """Kaplan-Meier median of right-censored times (nan if survival never reaches 0.5).

    The rule of :func:`analysis.survival.km_medians` (:func:`~analysis.survival.first_below_half`).
    """
    t = np.asarray(months, dtype=float)
    d = np.asarray(died, dtype=bool)
    if not len(t):
        return math.nan
    times, inv = np.unique(t, return_inverse=True)
    n_at = np.bincount(inv, minlength=len(times))
    events = np.bincount(inv, weights=d, minlength=len(times))
    at_risk = len(t) - np.cumsum(n_at) + n_at
    median = first_below_half(times, np.cumprod(1.0 - events / at_risk), events)
    return math.nan if median is None else median


def _percentile_ci(samples: np.ndarray) -> tuple[float, float]:
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if len(s) < 10:
        return math.nan, math.nan
    return float(np.quantile(s, 0.025)), float(np.quantile(s, 0.975))


def _mean_ci(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and its 95% t interval (normal beyond 30)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if n < 2:
        return m, math.nan, math.nan
    from scipy.stats import t as student

    half = float(student.ppf(0.975, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    return m, m - half, m + half


def _median_ci(x: np.ndarray) -> tuple[float, float, float]:
    """Median and its distribution-free 95% interval (binomial order statistics)."""
    x = np.sort(np.asarray(x, dtype=float)[np.isfinite(x)])
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan
    med = float(np.median(x))
    half = Z95 * math.sqrt(n) / 2
    lo, hi = int(math.floor(n / 2 - half)), int(math.ceil(n / 2 + half))
    if lo < 0 or hi >= n:
        return med, math.nan, math.nan
    return med, float(x[lo]), float(x[hi])


def _share_ci(k: int, n: int) -> tuple[float, float, float]:
    """Share k/n with its Wilson 95% interval."""
    if n == 0:
        return math.nan, math.nan, math.nan
    p = k / n
    den = 1 + Z95**2 / n
    c = (p + Z95**2 / (2 * n)) / den
    h = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / den
    return p, c - h, c + h


def _cluster_bootstrap(
    groups: np.ndarray, stat: Callable[[np.ndarray], float], reps: int = BOOTSTRAP
) -> np.ndarray:
    """Bootstrap replicates of ``stat(weights)`` resampling clusters (patients).

    ``groups`` is each row's cluster index (0..k-1); ``stat`` takes per-row weights (how many
    times the row's cluster was drawn) and returns the statistic.
    """
    k = int(groups.max()) + 1 if len(groups) else 0
    rng = _rng()
    out = np.empty(reps)
    for b in range(reps):
        counts = np.bincount(rng.integers(0, k, k), minlength=k)
        out[b] = stat(counts[groups].astype(float))
    return out


def _codes(ids: np.ndarray) -> np.ndarray:
    return np.unique(ids, return_inverse=True)[1]


def _weighted_mean(x: np.ndarray, w: np.ndarray) -> float:
    s = w.sum()
    return float((x * w).sum() / s) if s > 0 else math.nan


def _weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    keep = w > 0
    x, w = x[keep], w[keep]
    if not len(x):
        return math.nan
    order = np.argsort(x, kind="stable")
    x, c = x[order], np.cumsum(w[order])
    return float(x[np.searchsorted(c, c[-1] / 2)])


def _ols_slopes(ids: np.ndarray, x: np.ndarray, y: np.ndarray, min_n: int) -> pl.DataFrame:
    """Per id: least-squares slope of y on x (ids with at least ``min_n`` points)."""
    df = pl.DataFrame({"id": ids, "x": x, "y": y}).drop_nulls().filter(pl.col("y").is_not_nan())
    xs, ys = pl.col("x"), pl.col("y")
    return (
        df.group_by("id")
        .agg(
            pl.len().alias("n"),
            ((xs - xs.mean()) * (ys - ys.mean())).sum().alias("sxy"),
            ((xs - xs.mean()) ** 2).sum().alias("sxx"),
            ys.first().alias("y0"),
        )
        .filter((pl.col("n") >= min_n) & (pl.col("sxx") > 0))
        .with_columns((pl.col("sxy") / pl.col("sxx")).alias("slope"))
        .sort("id")
    )


# ---------------------------------------------------------------------------------------------
# Shared queries


def _survival(run: Run, by: Sequence[str] = ()) -> pl.DataFrame:
    return survival_times(run, list(by) or None).collect()


def _km(run: Run) -> Estimate:
    st = _survival(run)
    km = km_medians(kaplan_meier_estimate(st))
    row = km.row(0, named=True)
    return _est(row["median"], row["lower"], row["upper"], st.height,
                f"{row['deaths']} deaths of {row['patients']}")


def _visits_in_window(run: Run, column: str, window: float | None) -> pl.DataFrame:
    """Visits of symptomatic patients with ``column``, months since the first visit."""
    pts = patients(run, ["symptom_onset_month", "first_visit_month"]).filter(
        pl.col("first_visit_month").is_not_null() & pl.col("symptom_onset_month").is_not_null()
    )
    v = (
        frames(run)["visits"]
        .select("patient_id", "month", column)
        .join(pts, on="patient_id", how="inner")
        .with_columns((pl.col("month") - pl.col("first_visit_month")).alias("since_first"))
    )
    if window is not None:
        v = v.filter(pl.col("since_first") <= window + 1e-9)
    return v.sort("patient_id", "month").collect()


def _slope_estimate(run: Run, column: str, window: float | None, scale: float) -> Estimate:
    v = _visits_in_window(run, column, window)
    s = _ols_slopes(
        v["patient_id"].to_numpy(),
        v["month"].to_numpy(),
        v[column].cast(pl.Float64).to_numpy(),
        SLOPE_MIN_VISITS,
    )
    m, lo, hi = _mean_ci(s["slope"].to_numpy() * scale)
    span = "all visits" if window is None else f"first {window:g} months of follow-up"
    return _est(m, lo, hi, s.height, f"per-patient OLS over {span}")


def _muscles(run: Run, columns: Sequence[str], muscles: Sequence[str] | None = None):
    lf = frames(run)["muscles"].select("patient_id", "month", "muscle", "side", *columns)
    lf = strings(lf, ["muscle", "side"])
    if muscles is not None:
        lf = lf.filter(pl.col("muscle").is_in(list(muscles)))
    return lf


def _month0(run: Run, column: str, muscles: Sequence[str]) -> pl.DataFrame:
    return (
        _muscles(run, [column, "units_alive_fraction"], muscles)
        .filter((pl.col("month") == 0) & pl.col(column).is_not_null())
        .collect()
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
        .collect()
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


def _clinical_onset_site(run: Run) -> pl.LazyFrame:
    """Per patient, the site of the first symptoms (``region_onset`` events) as clinical
    papers group it: bulbar, limb (cervical or lumbosacral) or trunk (thoracic)."""
    ev = strings(
        frames(run)["events"].select("patient_id", "event", "month", "region"),
        ["event", "region"],
    )
    return (
        ev.filter(pl.col("event") == "region_onset")
        .sort("patient_id", "month")
        .group_by("patient_id")
        .agg(pl.col("region").first())
        .select(
            "patient_id",
            pl.col("region").replace_strict(ONSET_SITE, default="other").alias("site"),
        )
    )


def bulbar_onset_survival_shorter(runs: Mapping[str, Run]) -> Estimate:
    """Median survival of bulbar-onset minus limb-onset ALS (months), patient bootstrap.

    The onset site is clinical: where the first symptoms appeared (``region_onset`` events),
    not the latent region where degeneration started.
    """
    run = runs["als_natural_history"]
    st = _survival(run).join(_clinical_onset_site(run).collect(), on="patient_id", how="inner")
    t, d = st["months"].to_numpy(), st["died"].to_numpy()
    bulbar = (st["site"] == "bulbar").to_numpy()
    limb = (st["site"] == "limb").to_numpy()
    diff = km_median(t[bulbar], d[bulbar]) - km_median(t[limb], d[limb])
    rng = _rng()
    reps = np.empty(BOOTSTRAP)
    ib, il = np.flatnonzero(bulbar), np.flatnonzero(limb)
    for b in range(BOOTSTRAP):
        sb = rng.choice(ib, len(ib))
        sl = rng.choice(il, len(il))
        reps[b] = km_median(t[sb], d[sb]) - km_median(t[sl], d[sl])
    lo, hi = _percentile_ci(reps)
    return _est(diff, lo, hi, int(bulbar.sum() + limb.sum()),
                f"bulbar {km_median(t[bulbar], d[bulbar]):.1f} (n={bulbar.sum()}), "
                f"limb {km_median(t[limb], d[limb]):.1f} (n={limb.sum()})")


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
    m, lo, hi = _median_ci(delay)
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
    """Shares of limb, bulbar and trunk onset (an input, reported with Wilson intervals)."""
    p = patients(runs["als_natural_history"], ["onset_site"]).collect()
    n = p.height
    parts = [_share_ci(int((p["onset_site"] == s).sum()), n) for s in ("limb", "bulbar", "trunk")]
    return _est(*[tuple(x[i] for x in parts) for i in range(3)], n)


def mnd_phenotype_mix(runs: Mapping[str, Run]) -> Estimate:
    """Shares of latent ALS, PMA and PLS (an input, reported with Wilson intervals)."""
    p = patients(runs["mnd_population"], ["phenotype"]).collect()
    n = p.height
    parts = [_share_ci(int((p["phenotype"] == s).sum()), n) for s in ("ALS", "PMA", "PLS")]
    return _est(*[tuple(x[i] for x in parts) for i in range(3)], n)


def reinnervation_hides_loss(runs: Mapping[str, Run], bins: int = 20, min_n: int = 5) -> Estimate:
    """Fraction of units lost when the median CMAP (over its month-0 value) falls below 0.8."""
    m = _muscles(runs["als_natural_history@month0"], ["cmap_mv", "units_alive_fraction"]).collect()
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
    groups = _codes(r["patient_id"].to_numpy())

    def stat(w: np.ndarray) -> float:
        x, y = [], []
        for k in range(bins):
            sel = b == k
            if w[sel].sum() >= min_n:
                x.append(centres[k])
                y.append(_weighted_median(rel[sel], w[sel]))
        c = _crossing(np.array(x), np.array(y), CMAP_FALL)
        return math.nan if c is None else c

    point = stat(np.ones(len(lost)))
    lo, hi = _percentile_ci(_cluster_bootstrap(groups, stat))
    return _est(point, lo, hi, int(groups.max()) + 1 if len(groups) else 0,
                "median CMAP over month-0 CMAP against true units lost, all muscles")


def mune_healthy_thenar(runs: Mapping[str, Run]) -> Estimate:
    """Mean APB MUNE at month 0 (healthy), both sides."""
    m = _month0(runs["als_natural_history@month0"], "mune", ["APB"])
    mean, lo, hi = _mean_ci(m["mune"].to_numpy())
    sd = float(m["mune"].std()) if m.height > 1 else math.nan
    return _est(mean, lo, hi, m["patient_id"].n_unique(), f"SD {sd:.0f}")


def munix_healthy(runs: Mapping[str, Run]) -> Estimate:
    """Mean MUNIX at month 0 (healthy) in APB, ADM, biceps and TA, both sides."""
    m = _month0(runs["als_natural_history@month0"], "munix", MUNIX_MUSCLES)
    vals, los, his, sds = [], [], [], []
    for name in MUNIX_MUSCLES:
        x = m.filter(pl.col("muscle") == name)["munix"].to_numpy()
        mean, lo, hi = _mean_ci(x)
        vals.append(mean)
        los.append(lo)
        his.append(hi)
        sds.append(float(np.std(x, ddof=1)) if len(x) > 1 else math.nan)
    return _est(tuple(vals), tuple(los), tuple(his), m["patient_id"].n_unique(),
                "SD " + "/".join(f"{s:.0f}" for s in sds))


def munix_decline_als(runs: Mapping[str, Run]) -> Estimate:
    """Mean per-patient decline of the MUNIX sum score (% of first visit per month)."""
    run = runs["als_natural_history"]
    pts = patients(run, ["first_visit_month"]).filter(pl.col("first_visit_month").is_not_null())
    s = (
        _muscles(run, ["munix"], MUNIX_MUSCLES)
        .group_by("patient_id", "month")
        .agg(pl.col("munix").sum().alias("sum"), pl.len().alias("k"))
        .join(pts, on="patient_id", how="inner")
        .filter(pl.col("month") - pl.col("first_visit_month") <= MUNIX_WINDOW_MONTHS + 1e-9)
        .sort("patient_id", "month")
        .collect()
    )
    sl = _ols_slopes(s["patient_id"].to_numpy(), s["month"].to_numpy(), s["sum"].to_numpy(),
                     SLOPE_MIN_VISITS).filter(pl.col("y0") > 0)
    pct = -100.0 * (sl["slope"] / sl["y0"]).to_numpy()
    m, lo, hi = _mean_ci(pct)
    return _est(m, lo, hi, sl.height,
                f"sum of {', '.join(MUNIX_MUSCLES)} (both sides), first "
                f"{MUNIX_WINDOW_MONTHS:g} months")


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
        .collect()
    )
    d = m["d"].to_numpy()
    groups = _codes(m["patient_id"].to_numpy())

    def stat(w: np.ndarray) -> float:
        mu = _weighted_mean(d, w)
        return 100.0 * math.sqrt(_weighted_mean((d - mu) ** 2, w) / 2.0)

    point = stat(np.ones(len(d)))
    lo, hi = _percentile_ci(_cluster_bootstrap(groups, stat))
    return _est(point, lo, hi, int(groups.max()) + 1 if len(groups) else 0,
                f"{len(d)} pairs of consecutive visits")


def _cmct(runs: Mapping[str, Run], muscles: Sequence[str]) -> Estimate:
    m = _month0(runs["als_natural_history@month0"], "cmct_ms", muscles)
    mean, lo, hi = _mean_ci(m["cmct_ms"].to_numpy())
    sd = float(m["cmct_ms"].std()) if m.height > 1 else math.nan
    return _est(mean, lo, hi, m["patient_id"].n_unique(), f"SD {sd:.2f} ms")


def cmct_normal_upper_ms(runs: Mapping[str, Run]) -> Estimate:
    """Mean CMCT to APB at month 0 (healthy), ms."""
    return _cmct(runs, ["APB"])


def cmct_normal_lower_ms(runs: Mapping[str, Run]) -> Estimate:
    """Mean CMCT to EDB and TA at month 0 (healthy), ms."""
    return _cmct(runs, ["EDB", "TA"])


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
        .collect()
    )
    h = healthy["fasciculations_per_min"].to_numpy()
    hg = _codes(healthy["patient_id"].to_numpy())
    rate = als["fasciculations_per_min"].to_numpy()
    strong = (als["mrc_grade"] == 5).to_numpy()
    ag = _codes(als["patient_id"].to_numpy())
    h_reps = _cluster_bootstrap(hg, lambda w: _weighted_mean(h, w))
    h0 = float(h.mean()) if len(h) else math.nan
    vals, los, his = [], [], []
    for sel in (strong, ~strong):
        point = float(rate[sel].mean()) / h0 if sel.any() and h0 > 0 else math.nan
        reps = _cluster_bootstrap(ag, lambda w, sel=sel: _weighted_mean(rate[sel], w[sel]))
        lo, hi = _percentile_ci(reps / h_reps)
        vals.append(point)
        los.append(lo)
        his.append(hi)
    checks = {"weak above strong": bool(vals[1] > vals[0])}
    return _est(tuple(vals), tuple(los), tuple(his), int(ag.max()) + 1 if len(ag) else 0,
                f"healthy biceps {h0:.3f}/min; {int(strong.sum())} strong, "
                f"{int((~strong).sum())} weak examinations; weak/strong "
                f"{vals[1] / vals[0] if vals[0] else math.nan:.1f} (published 4)", checks)


def _hands(run: Run) -> pl.DataFrame:
    m = _muscles(run, ["cmap_mv"], ["APB", "ADM"]).collect()
    return (
        m.pivot(on="muscle", index=["patient_id", "month", "side"], values="cmap_mv")
        .filter(pl.col("ADM") > 0)
        .with_columns((pl.col("APB") / pl.col("ADM")).alias("ratio"))
    )


def split_hand(runs: Mapping[str, Run]) -> Estimate:
    """Share with a split hand (APB/ADM < 0.6, either hand) among ALS patients with hand
    involvement (APB CMAP below the healthy 5th percentile, either hand) at diagnosis; checks:
    the share among all ALS patients there, and their median ratio against the healthy one."""
    run = runs["als_natural_history"]
    dx = _als_diagnosis(run).filter(pl.col("als_month").is_not_null())
    hands = _hands(run).join(dx.select("patient_id", pl.col("als_month").alias("month")),
                             on=["patient_id", "month"], how="inner")
    healthy = _hands(runs["als_natural_history@month0"]).filter(pl.col("month") == 0)
    low_apb = float(healthy["APB"].quantile(0.05)) if healthy.height else math.nan
    per = hands.group_by("patient_id").agg(
        pl.col("ratio").min(), (pl.col("APB") < low_apb).any().alias("involved")
    )
    involved = per.filter(pl.col("involved"))
    k, n = int((involved["ratio"] < SPLIT_RATIO).sum()), involved.height
    share, lo, hi = _share_ci(k, n)
    k_all, n_all = int((per["ratio"] < SPLIT_RATIO).sum()), per.height
    share_all = k_all / n_all if n_all else math.nan
    als_med = float(hands["ratio"].median()) if hands.height else math.nan
    h_med = float(healthy["ratio"].median()) if healthy.height else math.nan
    return _est(share, lo, hi, n,
                f"{share_all:.2f} of all {n_all} ALS patients at diagnosis; median APB/ADM "
                f"{als_med:.2f} vs healthy {h_med:.2f} (difference {als_med - h_med:+.2f})",
                {"all ALS within 35-65%": bool(0.35 <= share_all <= 0.65),
                 "ALS ratio below healthy": bool(als_med < h_med)})


#: Target id -> (estimator, runs it reads).
ESTIMATORS: dict[str, tuple[Callable[[Mapping[str, Run]], Estimate], tuple[str, ...]]] = {
    "als_survival_median_months": (als_survival_median_months, ("als_natural_history",)),
    "als_five_year_survival": (als_five_year_survival, ("als_natural_history",)),
    "bulbar_onset_survival_shorter": (bulbar_onset_survival_shorter, ("als_natural_history",)),
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
}
#: Target id -> the named runs it reads.
NEEDS = {k: runs for k, (_, runs) in ESTIMATORS.items()}


def runs_needed(targets: Sequence[Target]) -> list[str]:
    """The named runs that the targets read (unknown target ids read none)."""
    out: dict[str, None] = {}
    for t in targets:
        for name in NEEDS.get(t.id, ()):
            out[name] = None
    return list(out)


# ---------------------------------------------------------------------------------------------
# Evaluation


@dataclass(frozen=True)
class Result:
    """A target, its simulated estimate and the verdict.

    Attributes:
        target: the published target.
        estimate: the simulated figure (None if there is no estimator for the id).
        ranges: the range judged per component (published, or derived: see ``range_note``).
        range_note: how a derived range was set (empty for a published one).
        status: ``pass``, ``fail``, ``input`` (reported, not judged) or ``n/a``.
    """

    target: Target
    estimate: Estimate | None
    ranges: tuple[tuple[float, float], ...] | None
    range_note: str
    status: str


def judge(target: Target, estimate: Estimate | None) -> Result:
    """Pass when every component's estimate lies in its range and every extra check holds."""
    if target.range is not None:
        ranges, note = (target.range,) * len(target.value), ""
    elif target.id in DERIVED_RANGES:
        ranges, note = DERIVED_RANGES[target.id]
    else:
        ranges, note = None, ""
    if estimate is None:
        return Result(target, None, ranges, note, "n/a")
    if target.kind == "input":
        return Result(target, estimate, ranges, note, "input")
    if ranges is None or any(v is None for v in estimate.value):
        return Result(target, estimate, ranges, note, "n/a")
    ok = all(lo <= v <= hi for v, (lo, hi) in zip(estimate.value, ranges, strict=False))
    ok = ok and all(estimate.checks.values())
    return Result(target, estimate, ranges, note, "pass" if ok else "fail")


def evaluate(targets: Sequence[Target], runs: Mapping[str, Run]) -> list[Result]:
    """Estimate and judge each target whose runs are available (others: ``n/a``)."""
    frames_of = {k: frames(v) for k, v in runs.items()}
    out = []
    for t in targets:
        fn, needs = ESTIMATORS.get(t.id, (None, ()))
        if fn is None or any(n not in frames_of for n in needs):
            out.append(judge(t, None))
            continue
        out.append(judge(t, fn(frames_of)))
    return out


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    a = abs(x)
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def format_value(values: Sequence[float | None]) -> str:
    return ", ".join(_fmt(v) for v in values)


def rows(results: Sequence[Result]) -> list[dict[str, str]]:
    """One dict of display strings per result (target, published, range, simulated, ...)."""
    out = []
    for r in results:
        t, e = r.target, r.estimate
        if r.ranges is None:
            rng = "-"
        else:
            rng = "; ".join(f"{_fmt(lo)}-{_fmt(hi)}" for lo, hi in r.ranges)
            if r.range_note:
                rng += " (derived)"
        if e is None:
            sim = ci = "-"
        else:
            sim = format_value(e.value)
            ci = "; ".join(
                f"{_fmt(lo)}-{_fmt(hi)}" if lo is not None and hi is not None else "-"
                for lo, hi in zip(e.lower, e.upper, strict=False)
            )
        out.append(
            {
                "target": t.id,
                "published": format_value(t.value),
                "range": rng,
                "simulated": sim,
                "ci95": ci,
                "n": "-" if e is None else str(e.n),
                "status": r.status,
                "detail": "" if e is None else "; ".join(
                    [e.detail, *[f"{k}: {'yes' if v else 'no'}" for k, v in e.checks.items()]]
                ).strip("; "),
            }
        )
    return out


def to_text(results: Sequence[Result]) -> str:
    """A plain-text table for the terminal."""
    table = rows(results)
    cols = ["target", "published", "range", "simulated", "ci95", "n", "status"]
    width = {c: max(len(c), *(len(r[c]) for r in table)) for c in cols}
    line = "  ".join(c.ljust(width[c]) for c in cols)
    out = [line, "  ".join("-" * width[c] for c in cols)]
    out += ["  ".join(r[c].ljust(width[c]) for c in cols) for r in table]
    return "\n".join(out)


def to_markdown(results: Sequence[Result], header: str = "") -> str:
    """A Markdown table (plus the derived ranges' reasoning and the quantities)."""
    table = rows(results)
    lines = [header.rstrip(), ""] if header else []
    lines += [
        "| target | quantity | published | range | simulated | 95% CI | n | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r, res in zip(table, results, strict=True):
        q = res.target.quantity.replace("|", "/")
        lines.append(
            f"| `{r['target']}` | {q} | {r['published']} | {r['range']} | {r['simulated']} "
            f"| {r['ci95']} | {r['n']} | {r['status']} |"
        )
    notes = [
        f"- `{res.target.id}`: {r['detail']}" for r, res in zip(table, results, strict=True)
        if r["detail"]
    ]
    derived = [f"- `{res.target.id}`: {res.range_note}" for res in results if res.range_note]
    if derived:
        lines += ["", "Derived ranges (the target gives none):", "", *derived]
    if notes:
        lines += ["", "Details:", "", *notes]
    return "\n".join(lines) + "\n"


__all__ = [
    "DERIVED_RANGES",
    "ESTIMATORS",
    "NEEDS",
    "Estimate",
    "Result",
    "Target",
    "evaluate",
    "judge",
    "km_median",
    "load_targets",
    "runs_needed",
    "to_markdown",
    "to_text",
]
