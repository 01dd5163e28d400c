"""CMAP scans and the MUNE that emerges from stimulus-response recordings (issue 8).

The scan kernel is checked against a brute-force loop over stimuli and units; the recorded scans
against the muscle table (a supramaximal response equals the CMAP); their shape against the
state (smooth when healthy, steps when few large units carry the CMAP); the MUNE against the
true unit count, with the bias and spread docs/model/examinations.md reports; and the export
against the table.
"""

from __future__ import annotations

import csv
from functools import cache

import numba
import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from scipy import special
from scipy.stats import ks_2samp

from analysis.export import scan_filename
from progression import random as rnd
from progression.body import default_muscles
from progression.exam import scans
from progression.model import simulate_chunk
from progression.runner import run
from progression.scenario import ScenarioError
from progression.studies.cli import main
from tests.conftest import small

NOISE_MV = 0.010
UNITS = {m.name: m.units for m in default_muscles()}
SCAN_KEY = ["patient_id", "month", "muscle", "side"]


def _lmn(patients: int = 40, **overrides):
    """Pure LMN disease in APB and ADM, seen every 3 months from month 0, APB scans recorded."""
    over = {
        "phenotypes.ALS.processes": ["lmn"],
        "body.muscles": ["APB", "ADM"],
        "visits.start": "degeneration",
        "visits.interval_months": 3,
        "time.duration_months": 54,
        "exam.scans.muscles": ["APB"],
        **overrides,
    }
    return small(patients=patients, **over)


@cache
def _tables() -> dict[str, pl.DataFrame]:
    tables = simulate_chunk(_lmn(80), np.arange(80)).tables
    return {name: pl.from_arrow(t) for name, t in tables.items()}


def _scans_with_truth() -> pl.DataFrame:
    """One row per recorded scan: its D50, largest rise, first and last response, and the
    muscle table's row of the same visit."""
    t = _tables()
    rows = []
    for key, g in t["scans"].group_by(SCAN_KEY, maintain_order=True):
        s, a = g["stimulus_ma"].to_numpy(), g["amplitude_mv"].to_numpy()
        step = scans.steps(a, 0.0)
        rows.append(
            dict(zip(SCAN_KEY, key, strict=True))
            | {
                "d50": scans.d50(a),
                "big_steps": int((step >= 0.05 * a.max()).sum()),
                "largest_step": step[0],
                "first": a[0],
                "last": a[-1],
                "n": len(a),
                "falling": bool((np.diff(s) < 0).all()),
            }
        )
    per_scan = pl.DataFrame(rows)
    return per_scan.join(t["muscles"], on=SCAN_KEY, how="left")


# ------------------------------------------------------------------------------- the kernel


def test_lazy_draws_are_the_numbers_of_progression_random():
    ids = np.array([0, 7, 123456])
    expected = rnd.uniform(11, "scan:3", ids, 40)
    starts = rnd.starts(11, "scan:3", ids)
    for row, start in enumerate(starts):
        got = [scans._uniform(start, c) for c in range(1, 41)]
        np.testing.assert_array_equal(got, expected[row])


def _brute_force_scan(sorted_ma, order, alive, fibres, start, row, muscle, scale, key, rs, n):
    """Every stimulus x every unit: the definition the fast kernel must reproduce."""
    a0, a1 = start[muscle], start[muscle + 1]
    living = [q for q in range(a0, a1) if alive[row, a0 + order[row, q]]]
    t = [float(sorted_ma[row, q]) for q in living]
    s_hi = max(t) * (1 + scans.BAND * rs) * (1 + scans.SCAN_MARGIN)
    s_lo = min(t) * (1 - scans.BAND * rs) * (1 - scans.SCAN_MARGIN)
    ds = (s_hi - s_lo) / (n - 1)
    stim, amp = np.empty(n), np.empty(n)
    smup_nv = {q: round(float(fibres[row, a0 + order[row, q]]) * scale * 1e6) for q in living}
    for k in range(n):
        s = s_hi - k * ds
        fired = 0  # nanovolts
        for q in living:
            t_q = float(sorted_ma[row, q])
            if t_q * (1 + scans.BAND * rs) <= s:  # above its fluctuation band: fires
                fired += smup_nv[q]
            elif t_q * (1 - scans.BAND * rs) < s:  # within it: a uniform below Phi(x)
                x = (s - t_q) * (1.0 / (rs * t_q))
                u = scans._uniform(key, scans._counter(muscle, q - a0, k))
                if u < scans._phi(x):
                    fired += smup_nv[q]
        noise = scans._ndtri(scans._uniform(key, scans._counter(muscle, scans._NOISE, k)))
        stim[k], amp[k] = s, fired * 1e-6 + NOISE_MV * noise
    return stim, amp


def test_scan_kernel_equals_brute_force():
    rng = np.random.default_rng(5)
    start = np.array([0, 12, 30])
    ids = np.arange(3)
    sorted_ma, order = scans.thresholds(3, ids, start, 0.12)
    alive = rng.random((3, 30)) < 0.7
    fibres = np.where(alive, rng.uniform(50, 900, (3, 30)), 0).astype(np.float32)
    rows, muscles = np.array([0, 1, 2, 2]), np.array([0, 1, 0, 1])
    scale = np.array([3e-4, 2e-4, 5e-4, 4e-4])
    keys = rnd.starts(3, "scan:0", ids)[rows]
    stim, amp = scans.scan(
        sorted_ma, order, alive, fibres, start, rows, muscles, scale, keys,
        rs=0.015, noise_uv=10.0, stimuli=300,
    )
    for j in range(len(rows)):
        s, a = _brute_force_scan(
            sorted_ma, order, alive, fibres, start, rows[j], muscles[j], scale[j], keys[j],
            0.015, 300,
        )
        np.testing.assert_allclose(stim[j], s, rtol=0, atol=1e-12)
        np.testing.assert_allclose(amp[j], a, rtol=0, atol=1e-12)


def _brute_force_mune(sorted_ma, order, alive, fibres, start, row, muscle, scale, cmap, key,
                      rs, noise_mv, detect_mv, step, target):
    """Incremental MUNE stimulus by stimulus over every living unit: the definition (McComas
    1971 as scans.py's docstring states it) the compiled pass must reproduce."""
    a0, a1 = start[muscle], start[muscle + 1]
    living = [q for q in range(a0, a1) if alive[row, a0 + order[row, q]]]
    if not living:
        return 0.0, 0
    smup_nv = {q: round(float(fibres[row, a0 + order[row, q]]) * scale * 1e6) for q in living}
    s = float(sorted_ma[row, living[0]]) * (1 - scans.START * rs)
    levels, seen = [], []  # level means (level 0: the baseline), responses per level
    for k in range(scans.MAX_STIMULI):
        fired, every_unit_sure = 0, True
        for q in living:
            t_q = float(sorted_ma[row, q])
            if t_q * (1 + scans.BAND * rs) <= s:
                fired += smup_nv[q]
                continue
            every_unit_sure = False
            if t_q * (1 - scans.BAND * rs) < s:
                u = scans._uniform(key, scans._counter(muscle, q - a0, k))
                if u < scans._phi((s - t_q) * (1.0 / (rs * t_q))):
                    fired += smup_nv[q]
        noise = scans._ndtri(scans._uniform(key, scans._counter(muscle, scans._NOISE, k)))
        resp = fired * 1e-6 + noise_mv * noise
        if k == 0:
            levels, seen = [resp], [1.0]
        else:
            gaps = [abs(resp - level) for level in levels]
            near = int(np.argmin(gaps))
            if gaps[near] <= detect_mv:
                seen[near] += 1
                levels[near] += (resp - levels[near]) / seen[near]
            elif resp > levels[0] + detect_mv:
                levels.append(resp)
                seen.append(1.0)
                if len(levels) - 1 == target:
                    break
        if every_unit_sure:
            break
        s *= 1 + step
    n = len(levels) - 1
    top = max((level - levels[0] for level in levels[1:]), default=0.0)
    return (cmap * n / top if top > 0 else 0.0), n


@pytest.mark.parametrize(("step", "increments"), [(0.002, 10), (0.013, 5), (0.0007, 20)])
def test_incremental_mune_kernel_equals_brute_force(step, increments):
    """The compiled pass computes the band draws of 16 stimuli at a time and reads them one by
    one; stopping at any stimulus of a block (after ``increments`` increments, or when every
    living unit fires for sure) must give the numbers of one stimulus at a time."""
    rng = np.random.default_rng(1)
    start = np.array([0, 40, 100, 130])
    ids = np.arange(5)
    sorted_ma, order = scans.thresholds(3, ids, start, 0.12)
    alive = rng.random((5, 130)) < np.array([0.9, 0.6, 0.3, 0.1, 0.0])[:, None]
    fibres = np.where(alive, rng.uniform(50, 900, (5, 130)), 0).astype(np.float32)
    rows = np.array([4, 0, 1, 2, 3])
    scale = rng.uniform(2e-4, 5e-4, (5, 3))
    cmap = rng.uniform(1, 10, (5, 3))
    keys = rnd.starts(3, "mune:0", ids[rows])
    mune, counted = scans.incremental_mune(
        sorted_ma, order, alive, fibres, rows, start, scale, cmap, keys,
        rs=0.015, noise_uv=10.0, detect_sd=2.5, step=step, increments=increments,
    )
    assert (counted[1:] > 0).all()  # the comparison is not vacuous
    # Both ways of stopping occur: the target reached, and every unit firing for sure.
    assert (counted == increments).any() and ((counted > 0) & (counted < increments)).any()
    for j, row in enumerate(rows):
        for i in range(3):
            want, n = _brute_force_mune(
                sorted_ma, order, alive, fibres, start, row, i, scale[j, i], cmap[j, i],
                keys[j], 0.015, NOISE_MV, 2.5 * NOISE_MV, step, increments,
            )
            assert counted[j, i] == n
            # Equal but for fused multiply-adds in the compiled arithmetic.
            np.testing.assert_allclose(mune[j, i], want, rtol=1e-12, atol=0)


def test_the_polynomial_cdf_stays_within_its_tolerance_of_the_table():
    """The incremental MUNE's vector loop compares uniforms with ``scans._phi_approx``; its
    decisions equal the table's wherever it is within ``_PHI_TOLERANCE`` of ``scans._phi``:
    checked at 64 points in every table segment inside ``_PHI_EDGE`` (observed: 1.7e-7)."""
    per_sd = scans._PHI_PER_SD
    segments = np.arange(-scans._PHI_EDGE, scans._PHI_EDGE, 1.0 / per_sd)
    x = (segments[:, None] + np.linspace(0.0, 1.0 / per_sd, 64)[None, :]).ravel()
    x = x[np.abs(x) <= scans._PHI_EDGE]
    table = np.array([scans._phi(v) for v in x])
    approx = np.array([scans._phi_approx(v) for v in x])
    assert np.abs(approx - table).max() < 0.5 * scans._PHI_TOLERANCE


def test_a_guess_that_could_differ_from_the_table_is_flagged():
    """``scans._guess`` decides u < Phi(x) by the polynomial; whenever that could differ from
    the table's decision it must say so (and the pass then asks the table). Uniforms placed at,
    just off and well off the table's probability, across the band and at its edges."""
    x = np.concatenate([np.linspace(-2.9999, 2.9999, 4001), [-scans._PHI_EDGE - 1e-3, 2.999]])
    offsets = [-3e-6, -1e-6, -2e-7, -1e-9, -1e-15, 0.0, 1e-15, 1e-9, 2e-7, 1e-6, 3e-6]
    differ = unsure_far = 0
    for v in x:
        p = scans._phi(v)
        for d in offsets:
            u = p + d
            below, unsure = scans._guess(u, v)
            if below != (u < p):
                differ += 1
                assert unsure, (v, d)
            far = abs(d) >= 3e-6 and abs(v) <= scans._PHI_EDGE
            unsure_far += bool(unsure and far)
    assert differ > 0  # the polynomial does decide otherwise near p: the flag is needed
    assert unsure_far == 0  # and it asks the table only near p or at the band's edges


@numba.njit
def _blocks_against_the_table(stream, blocks, units, rs):
    """Random buffers of ``units`` units (thresholds 5-6 mA) and blocks of stimuli across their
    bands: ``scans._block_fired`` against the table stimulus by stimulus (``_band_fired`` over
    the units in band plus those above their band). The set-up draws come from ``stream``.
    Returns (blocks that differ, unit-stimuli in band, of which the polynomial alone would
    have decided otherwise)."""
    n_block = scans._BLOCK
    sure_f, can_f = 1.0 + scans.BAND * rs, 1.0 - scans.BAND * rs
    b_t = np.empty(units)
    b_inv = np.empty(units)
    b_amp = np.empty(units, dtype=np.int64)
    b_rank = np.arange(units)
    s_blk = np.empty(n_block)
    fired = np.empty(n_block, dtype=np.int64)
    guess = np.empty(n_block, dtype=np.bool_)
    bad = in_band = wrong_guess = 0
    c = 0  # counter of the set-up draws
    for _ in range(blocks):
        key = np.uint64(scans._uniform(stream, c + 1) * 2.0**62)
        for b in range(units):
            b_t[b] = 5.0 + scans._uniform(stream, c + 2 + b)
            b_amp[b] = 1 + np.int64(scans._uniform(stream, c + 2 + units + b) * 1e6)
        b_t.sort()
        b_inv[:] = 1.0 / (rs * b_t)
        k0 = np.int64(scans._uniform(stream, c + 2 + 2 * units) * (4000 // n_block)) * n_block
        s = 5.0 * can_f + (6.0 * sure_f - 5.0 * can_f) * scans._uniform(stream, c + 3 + 2 * units)
        c += 3 + 2 * units
        for q in range(n_block):
            s_blk[q] = s
            s *= 1.002
        scans._block_fired(
            key, 3, k0, s_blk, 0, units, b_t, b_inv, b_amp, b_rank, sure_f, can_f, fired, guess
        )
        for q in range(n_block):
            s = s_blk[q]
            want = 0
            lo = 0
            while lo < units and b_t[lo] * sure_f <= s:
                want += b_amp[lo]
                lo += 1
            hi = lo
            while hi < units and b_t[hi] * can_f < s:
                hi += 1
            want += scans._band_fired(key, 3, k0 + q, s, lo, hi, b_t, b_inv, b_amp, b_rank)
            bad += fired[q] != want
            for b in range(lo, hi):
                in_band += 1
                u = scans._uniform(key, scans._counter(3, b_rank[b], k0 + q))
                x = (s - b_t[b]) * b_inv[b]
                wrong_guess += (u < scans._phi_approx(x)) != (u < scans._phi(x))
    return bad, in_band, wrong_guess


def test_block_draws_decide_as_the_table_even_where_the_polynomial_would_not():
    """The vector loop's polynomial decides otherwise than the table about once in 10^7
    unit-stimuli; the pass must then take the table's decision. 5 10^7 unit-stimuli in band."""
    stream = rnd.starts(7, "test-blocks", np.array([0]))[0]
    bad, in_band, wrong_guess = _blocks_against_the_table(stream, 400_000, 24, 0.015)
    assert in_band > 4 * 10**7
    assert wrong_guess > 0  # the fallback was needed (observed: 21)
    assert bad == 0


@pytest.mark.parametrize("per_unit", [1, scans._BUCKETS_PER_UNIT, 9])
@pytest.mark.parametrize("n", [1, 2, 7, 190, 600])
def test_the_bucket_order_is_numpys_stable_argsort(n, per_unit):
    """``scans._stable_order`` (counting sort into buckets, then insertion sort) must give the
    order of a stable sort, ties in index order, whatever the values: normals, repeated values,
    the bucket edges and far tails."""
    rng = np.random.default_rng(n)
    z = rng.normal(size=n)
    if n >= 7:
        z[rng.integers(0, n, n // 3)] = z[0]  # ties
        z[1:5] = [-4.0, 4.0, -40.0, 1e300]
    o = np.empty(n, dtype=np.int64)
    scans._stable_order(z, o, np.empty(per_unit * n + 1, dtype=np.int64))
    np.testing.assert_array_equal(o, np.argsort(z, kind="stable"))


def test_thresholds_follow_the_stable_order_of_the_documented_deviates():
    start = np.array([0, 40, 230, 260])
    ids = np.array([2, 9])
    sorted_ma, order = scans.thresholds(5, ids, start, 0.12)
    z = special.ndtri(rnd.uniform(5, "scan-threshold", ids, 260))
    median = scans.MEDIAN_THRESHOLD_MA * np.exp(
        scans.PERSON_THRESHOLD_SD * special.ndtri(rnd.uniform(5, "scan-threshold-muscle", ids, 3))
    )
    for j in range(2):
        for i in range(3):
            a, b = start[i], start[i + 1]
            o = np.argsort(z[j, a:b], kind="stable")
            np.testing.assert_array_equal(order[j, a:b], o)
            want = median[j, i] * np.exp(0.12 * z[j, a:b][o])
            np.testing.assert_allclose(sorted_ma[j, a:b], want, rtol=1e-6)


def test_thresholds_of_a_subset_of_muscles_are_those_of_the_full_draw():
    start = np.array([0, 12, 30, 45])
    ids = np.array([3, 8])
    full, full_order = scans.thresholds(7, ids, start, 0.12)
    some = np.array([False, True, True])
    part, part_order = scans.thresholds(7, ids, start, 0.12, some)
    np.testing.assert_array_equal(part[:, 12:], full[:, 12:])
    np.testing.assert_array_equal(part_order[:, 12:], full_order[:, 12:])
    assert np.isnan(part[:, :12]).all()


def test_a_noiseless_scan_of_separate_thresholds_is_a_staircase_of_the_smups():
    """Three units with far-apart thresholds: the responses are exactly 0, a, a+b, a+b+c."""
    start = np.array([0, 3])
    sorted_ma = np.array([[5.0, 7.0, 9.0]], dtype=np.float32)
    order = np.array([[2, 0, 1]], dtype=np.int16)
    fibres = np.array([[100.0, 200.0, 300.0]], dtype=np.float32)
    alive = np.ones((1, 3), dtype=bool)
    stim, amp = scans.scan(
        sorted_ma, order, alive, fibres, start, np.array([0]), np.array([0]), np.array([0.001]),
        rnd.starts(1, "scan:0", [0]), rs=0.01, noise_uv=1e-9, stimuli=500,
    )
    smup = {5.0: 0.3, 7.0: 0.1, 9.0: 0.2}  # threshold -> SMUP (mV) through ``order``
    levels = np.cumsum([0.0, *smup.values()])
    assert np.abs(amp[0, :, None] - levels[None, :]).min(axis=1).max() < 1e-6
    assert amp[0, 0] == pytest.approx(0.6) and amp[0, -1] == pytest.approx(0.0, abs=1e-6)
    # Away from the fluctuation bands the response is set by the thresholds below the stimulus.
    for s, a in zip(stim[0], amp[0], strict=True):
        below = [v for t, v in smup.items() if t * (1 + scans.BAND * 0.01) <= s]
        above = [t for t in smup if t * (1 - scans.BAND * 0.01) < s]
        if len(below) == len(above):
            assert a == pytest.approx(sum(below), abs=1e-6)


# --------------------------------------------------------------------------- recorded scans


def test_recorded_scans_run_from_the_cmap_down_to_silence():
    per = _scans_with_truth()
    assert len(per) >= 500 and (per["n"] == 500).all() and per["falling"].all()
    # Supramaximal: every SMUP fires, and they sum to the visit's CMAP (recording noise only).
    assert ((per["first"] - per["cmap_mv"]).abs() < 5 * NOISE_MV).all()
    # Subthreshold: noise around zero.
    assert (per["last"].abs() < 5 * NOISE_MV).all()


def test_healthy_scans_are_smooth_and_reinnervated_ones_step():
    """Steps are gaps between the responses sorted by size (:func:`scans.steps`); D50 counts the
    largest gaps that make half the CMAP (Sleutjes 2014). Observed values in brackets."""
    per = _scans_with_truth().with_columns(
        (pl.col("largest_step") / pl.col("cmap_mv")).alias("jump")
    )
    healthy = per.filter(pl.col("units_alive_fraction") == 1)
    # Fewer, enlarged units carry a CMAP still near normal: loss hidden by reinnervation.
    enlarged = per.filter(pl.col("units_alive_fraction") < 0.4, pl.col("fibres_fraction") > 0.6)
    assert len(healthy) >= 100 and len(enlarged) >= 30  # observed 714 and 107
    # A smooth sigmoid: half the CMAP takes many small gaps (D50 43), the largest gap is a few
    # percent of the CMAP (2.7%), and hardly any scan has a step of 5% of its CMAP (1%).
    assert healthy["d50"].median() >= 35
    assert healthy["jump"].median() <= 0.04
    assert (healthy["big_steps"] > 0).mean() <= 0.05
    # Steps and jumps: fewer gaps make half the CMAP (D50 26), the largest is larger (5.7%),
    # and most scans have a step of 5% of the CMAP or more (62%).
    assert enlarged["d50"].median() <= 0.7 * healthy["d50"].median()
    assert enlarged["jump"].median() >= 2 * healthy["jump"].median()
    assert (enlarged["big_steps"] > 0).mean() >= 0.6
    # D50 falls with the units alive across the course (Spearman 0.82), wherever the CMAP
    # stands well clear of the noise (>= 1 mV: at a few tenths of a millivolt the recording
    # noise itself makes many small gaps and D50 rises again).
    from scipy.stats import spearmanr

    clear = per.filter(pl.col("cmap_mv") >= 1.0)
    assert spearmanr(clear["d50"], clear["units_alive_fraction"]).statistic >= 0.65


# ---------------------------------------------------------------------------- MUNE emerges


def _ratio(m: pl.DataFrame) -> pl.DataFrame:
    true = pl.col("units_alive_fraction") * pl.col("muscle").replace_strict(UNITS)
    return m.filter(true >= 1).with_columns((pl.col("mune") / true).alias("ratio"))


def test_mune_tracks_the_true_unit_count_with_the_documented_bias():
    """docs/model/examinations.md (MUNE): healthy muscles are underestimated (SMUPs under the
    detection limit merge into larger increments), reinnervated ones overestimated (alternation of
    few large units); the 10-90% range of MUNE / true count is wide. Tolerances: the documented
    figures, which come from 200 patients and six muscles, +-0.12 for this 40-patient, two-muscle
    cohort."""
    m = _ratio(_tables()["muscles"])
    healthy = m.filter(pl.col("units_alive_fraction") == 1)
    assert 0.72 <= healthy["ratio"].median() <= 1.0  # documented: 0.87
    assert 0.5 <= healthy["ratio"].quantile(0.1) and healthy["ratio"].quantile(0.9) <= 1.5
    apb = healthy.filter(pl.col("muscle") == "APB")["mune"].median()
    assert 130 <= apb <= 320  # thenar MUNE (Galea 1991: 228 +/- 93)
    reinnervated = m.filter(
        pl.col("units_alive_fraction").is_between(0.3, 0.6), pl.col("fibres_fraction") >= 0.8
    )
    assert len(reinnervated) >= 100
    assert 1.05 <= reinnervated["ratio"].median() <= 1.5  # documented: 1.21 to 1.35
    # The estimate still follows the truth across the whole course (Spearman 0.79).
    from scipy.stats import spearmanr

    assert spearmanr(m["mune"], m["units_alive_fraction"]).statistic >= 0.7


# ------------------------------------------------------------------------ the scans table


def test_scans_are_recorded_only_when_asked_and_at_the_chosen_visits():
    plain = simulate_chunk(_lmn(6, **{"exam.scans.muscles": []}), np.arange(6)).tables
    assert "scans" not in plain
    every2 = simulate_chunk(_lmn(6, **{"exam.scans.every_nth_visit": 2}), np.arange(6)).tables
    sc = pl.from_arrow(every2["scans"])
    assert set(sc["muscle"].unique()) == {"APB"} and set(sc["side"].unique()) == {"left", "right"}
    visits = pl.from_arrow(every2["visits"]).sort("month")
    for pid, g in visits.group_by("patient_id"):
        months = g["month"].to_list()
        got = sc.filter(pl.col("patient_id") == pid[0])["month"].unique().sort().to_list()
        assert got == months[::2]
    # The interim MUNE method stays selectable and needs no thresholds unless scans are asked.
    interim = _lmn(6, **{"exam.mune_method": "mean_smup", "exam.scans.muscles": []})
    m = pl.from_arrow(simulate_chunk(interim, np.arange(6)).tables["muscles"])
    assert ((m["mune"] > 0) == (m["units_alive_fraction"] > 0)).all()


def test_same_seed_same_scans_whatever_the_chunk():
    scenario = _lmn(8, **{"exam.scans.every_nth_visit": 4})
    whole = simulate_chunk(scenario, np.arange(8)).tables
    part = simulate_chunk(scenario, np.arange(5, 8)).tables
    for name in ("scans", "muscles"):
        a = pl.from_arrow(whole[name]).filter(pl.col("patient_id") >= 5)
        b = pl.from_arrow(part[name])
        assert a.equals(b), name


@pytest.mark.parametrize("method", ["incremental", "mean_smup"])
def test_mune_is_measured_only_in_the_chosen_muscles_with_unchanged_values(method):
    """``exam.mune_muscles`` leaves the other muscles' MUNE null and the chosen ones' values
    exactly as when every muscle is measured (draws are keyed by muscle, not by position)."""
    base = {"body.muscles": ["APB", "ADM", "TA"], "exam.scans.muscles": [],
            "exam.mune_method": method}
    every = pl.from_arrow(simulate_chunk(_lmn(6, **base), np.arange(6)).tables["muscles"])
    some = _lmn(6, **base, **{"exam.mune_muscles": ["ADM"]})
    got = pl.from_arrow(simulate_chunk(some, np.arange(6)).tables["muscles"])
    assert got["mune"].is_null().sum() == (got["muscle"] != "ADM").sum() > 0
    adm = got.filter(pl.col("muscle") == "ADM")
    assert adm["mune"].is_not_null().all()
    assert adm["mune"].equals(every.filter(pl.col("muscle") == "ADM")["mune"])
    assert got.drop("mune").equals(every.drop("mune"))
    none = _lmn(3, **base, **{"exam.mune_muscles": []})
    muscles = pl.from_arrow(simulate_chunk(none, np.arange(3)).tables["muscles"])
    assert muscles["mune"].is_null().all()
    with pytest.raises(ScenarioError, match="exam.mune_muscles"):
        _lmn(2, **{"exam.mune_muscles": ["thumb"]})


def test_scan_muscles_must_exist_and_be_simulated():
    with pytest.raises(ScenarioError, match="exam.scans.muscles"):
        _lmn(2, **{"exam.scans.muscles": ["thumb"]})
    with pytest.raises(ScenarioError, match="exam.scans.muscles: expected muscles among body"):
        _lmn(2, **{"exam.scans.muscles": ["TA"]})


# ---------------------------------------------------------------------------------- export


def test_export_scans_writes_csvs_that_read_back_as_the_table(tmp_path, capsys):
    out = tmp_path / "run"
    scenario = _lmn(4, **{"exam.scans.every_nth_visit": 6})
    run(scenario, out, workers=1, chunk_size=2)
    table = pa.concat_tables(
        [
            pa.parquet.read_table(p).append_column(
                "arm", pa.array(["natural_history"] * pa.parquet.read_metadata(p).num_rows)
            )
            for p in sorted((out / "scans").rglob("*.parquet"))
        ]
    )
    sc = pl.from_arrow(table)
    assert main(["export-scans", str(out), "--out", str(tmp_path / "csv")]) == 0
    files = sorted((tmp_path / "csv").glob("*.csv"))
    groups = sc.group_by(SCAN_KEY, maintain_order=True)
    assert len(files) == sum(1 for _ in groups) > 0
    for (pid, month, muscle, side), g in sc.group_by(SCAN_KEY, maintain_order=True):
        path = tmp_path / "csv" / scan_filename(pid, "natural_history", month, muscle, side)
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0] == ["S", "A"]
        back = np.array(rows[1:], dtype=np.float64)
        np.testing.assert_array_equal(back[:, 0], g["stimulus_ma"].to_numpy())
        np.testing.assert_array_equal(back[:, 1], g["amplitude_mv"].to_numpy())
    # Never silently overwritten; a run folder that is not one is refused; one line, exit 2.
    capsys.readouterr()
    assert main(["export-scans", str(out), "--out", str(tmp_path / "csv")]) == 2
    err = capsys.readouterr().err
    assert "exists; add --overwrite" in err and err.count("\n") == 1
    assert main(["export-scans", str(out), "--out", str(tmp_path / "csv"), "--overwrite"]) == 0
    for bad in (tmp_path / "nowhere", tmp_path / "csv"):
        capsys.readouterr()
        assert main(["export-scans", str(bad), "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("progression: error: ") and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def _box_muller_thresholds(seed, ids, start, pool_sd):
    """Stimulation thresholds as they were drawn before inversion (issue 18): Box-Muller
    deviates (``progression.random.normal``), each muscle's pool sorted stably."""
    units = int(start[-1])
    z = rnd.normal(seed, "scan-threshold", ids, units)
    z_pool = rnd.normal(seed, "scan-threshold-muscle", ids, len(start) - 1)
    sorted_ma = np.empty((len(ids), units), dtype=np.float32)
    order = np.empty((len(ids), units), dtype=np.int16)
    for i in range(len(start) - 1):
        a, b = start[i], start[i + 1]
        o = np.argsort(z[:, a:b], axis=1, kind="stable")
        median = scans.MEDIAN_THRESHOLD_MA * np.exp(scans.PERSON_THRESHOLD_SD * z_pool[:, i])
        order[:, a:b] = o
        sorted_ma[:, a:b] = median[:, None] * np.exp(pool_sd * np.take_along_axis(z[:, a:b], o, 1))
    return sorted_ma, order


def test_mune_from_thresholds_by_inversion_is_equivalent_to_box_muller():
    """Issue 18 draws the stimulation thresholds' normal deviates by inversion (one uniform,
    ``ndtri``) instead of Box-Muller (two uniforms, a logarithm and a cosine): other numbers,
    the same distribution. The incremental MUNE of 600 patients with the new thresholds and of
    600 others with the old ones (disjoint ids: independent samples) must agree by two-sample
    KS per muscle, in healthy and in degenerated muscles (family-wise alpha 0.01, Bonferroni),
    and the same comparison must reject thresholds half as spread (it can fail)."""
    names = ["APB", "biceps", "TA"]
    start = np.concatenate([[0], np.cumsum([UNITS[m] for m in names])])
    units, n = int(start[-1]), 600
    rng = np.random.default_rng(18)
    base = rng.lognormal(np.log(200.0), 0.6, units).astype(np.float32)
    healthy = (np.ones((n, units), dtype=bool), np.tile(base, (n, 1)))
    alive = rng.random((n, units)) < 0.25  # three quarters lost, survivors reinnervated x3
    sick = (alive, np.where(alive, 3.0 * base, 0.0).astype(np.float32))
    scale = np.full((n, len(names)), 3e-4)

    def mune(thr, ids, state):
        alive, fibres = state
        cmap = np.add.reduceat(fibres, start[:-1], axis=1)
        est, _ = scans.incremental_mune(
            *thr, alive, fibres, np.arange(n), start, scale, cmap * 3e-4,
            rnd.starts(11, "mune:0", ids), rs=0.015, noise_uv=10.0, detect_sd=2.5,
            step=0.002, increments=10,
        )
        return est

    new_ids, old_ids = np.arange(n), 100_000 + np.arange(n)
    new = scans.thresholds(11, new_ids, start, 0.12)
    old = _box_muller_thresholds(11, old_ids, start, 0.12)
    narrow = _box_muller_thresholds(11, old_ids, start, 0.12 * 0.5)
    tests = len(names) * 2
    for state in (healthy, sick):
        a, b = mune(new, new_ids, state), mune(old, old_ids, state)
        for i in range(len(names)):
            assert ks_2samp(a[:, i], b[:, i]).pvalue > 0.01 / tests, (names[i], state is sick)
    # Power: in healthy muscles thresholds half as spread give a MUNE about 15% lower (more
    # units within one increment's stimulus range), told apart in every muscle.
    a, w = mune(new, new_ids, healthy), mune(narrow, old_ids, healthy)
    assert all(ks_2samp(a[:, i], w[:, i]).pvalue < 0.01 / tests for i in range(len(names)))


def test_the_compiled_normal_quantile_is_acklam_s_to_its_stated_accuracy():
    """``scans._ndtri`` (recording noise, stimulation thresholds) against scipy's ``ndtri``
    over both tails and the centre: relative error below 1.2e-9, as its docstring states (a
    mistyped tail coefficient once made it 6e-6 in the tails)."""
    tail = np.logspace(-15, np.log10(0.49), 5000)
    p = np.concatenate([tail, 1.0 - tail])
    got = np.array([scans._ndtri(v) for v in p])
    np.testing.assert_allclose(got, special.ndtri(p), rtol=1.2e-9, atol=0)
