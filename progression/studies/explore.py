"""The explorer: a small cohort in the browser, as a Mesa ``SolaraViz`` page.

``progression explore [SCENARIO]`` serves :mod:`progression.studies.explore_app` with solara
(the ``explore`` extra: ``pip install 'progression[explore]'``). The page holds:

- Mesa's controls (step, play, reset) and the model parameters: LMN and UMN speed (the
  scenario's median, or mean, across patients), reinnervation capacity and the onset region;
  a change applies when the model is reset, as in every SolaraViz page;
- the cohort view (:func:`cohort_figure`): every patient's timeline, coloured by latent
  phenotype, with the diagnosis at each visit;
- the chosen patient's motor-unit pools, drawn by :func:`analysis.motor_units.muscle_figure`
  (the replay's figure) from the live recorder;
- the visit findings as they come, and the parameters as the model drew them;
- a DataCollector plot of the diagnoses, counted with AgentSet grouping.

:class:`ExplorerModel` is a :class:`~progression.model.CohortModel` with keyword parameters (what
SolaraViz re-instantiates on reset), a :class:`~progression.recorder.UnitRecorder` on every
patient and a ``mesa.DataCollector``. Its tables are those of ``progression run`` for the same
scenario (with the overrides) and patients.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import webbrowser
from pathlib import Path

import mesa
import numpy as np
import polars as pl

from analysis.motor_units import muscle_figure
from analysis.report.plots import PHENOTYPE_COLOURS, STATE_COLOURS
from progression import tables
from progression.body import COMPARTMENTS, REGIONS
from progression.distributions import Dist
from progression.model import CohortModel
from progression.recorder import UnitRecorder
from progression.scenario import Scenario, ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[2]
#: The explorer's default scenario: ALS, PMA and PLS in their population mix.
DEFAULT_SCENARIO = ROOT / "scenarios" / "mnd_population.toml"
#: Most patients the explorer takes (it keeps every unit of every patient every month).
MAX_PATIENTS = 100
#: The onset-region control's choices: the scenario's mix, or every patient in one region.
ONSET_CHOICES = ("scenario mix", *REGIONS)
#: Environment variables through which ``progression explore`` configures the app.
ENV_SCENARIO, ENV_PATIENTS = "PROGRESSION_EXPLORE_SCENARIO", "PROGRESSION_EXPLORE_PATIENTS"
#: Diagnosis -> marker of the cohort view.
DIAGNOSIS_MARKERS = {"none": ".", "PMA": "v", "PLS": "^", "ALS": "s"}


class ExploreError(ValueError):
    """The explorer cannot start; the message is one line saying why."""


def central(dist: Dist) -> tuple[str, float] | None:
    """The parameter of ``dist`` that sets its centre (``median``, ``mean`` or ``value``) and its
    value; None for a uniform distribution (no single centre to move)."""
    key = {"lognormal": "median", "normal": "mean", "constant": "value"}.get(dist.kind)
    return None if key is None else (key, dist.p[key])


def explorer_scenario(
    path: str | Path, patients: int, lmn_speed: float | None = None,
    umn_speed: float | None = None, reinnervation_capacity: float | None = None,
    onset_region: str = "scenario mix",
) -> Scenario:
    """The scenario at ``path`` with the explorer's controls as key-path overrides (None: the
    scenario's own value)."""
    base = load_scenario(path, patients=patients)
    over: dict = {}
    for value, dist, key in (
        (lmn_speed, base.disease.lmn and base.disease.lmn.speed, "disease.lmn.speed"),
        (umn_speed, base.disease.umn and base.disease.umn.speed, "disease.umn.speed"),
        (reinnervation_capacity, base.reinnervation.capacity, "reinnervation.capacity"),
    ):
        centre = central(dist) if dist else None
        if value is not None and centre is not None:
            over[f"{key}.{centre[0]}"] = float(value)
    if onset_region != "scenario mix":
        if onset_region not in REGIONS:
            raise ExploreError(f"onset region {onset_region!r}: one of {', '.join(ONSET_CHOICES)}")
        for region in REGIONS:
            over[f"cohort.onset_region.{region}"] = 1.0 if region == onset_region else 0.0
    return load_scenario(path, patients=patients, overrides=over) if over else base


class ExplorerModel(CohortModel):
    """A small cohort for the browser: every patient recorded unit by unit, a DataCollector of
    diagnoses (counted with ``agents.groupby``), and keyword parameters for SolaraViz.

    Args:
        scenario_path: the scenario file.
        patients: cohort size (patient ids 0 to ``patients - 1``).
        lmn_speed, umn_speed: the centre (median, mean or value) of the LMN and UMN speed
            distributions (1/month); None: the scenario's.
        reinnervation_capacity: the centre of ``reinnervation.capacity``; None: the scenario's.
        onset_region: ``"scenario mix"`` or one region for every patient.
        arm: the arm (default: the scenario's first).
    """

    def __init__(
        self, scenario_path: str = str(DEFAULT_SCENARIO), patients: int = 30,
        lmn_speed: float | None = None, umn_speed: float | None = None,
        reinnervation_capacity: float | None = None, onset_region: str = "scenario mix",
        arm: str | None = None,
    ) -> None:
        if not 1 <= patients <= MAX_PATIENTS:
            raise ExploreError(f"patients: 1 to {MAX_PATIENTS}, got {patients}")
        scenario = explorer_scenario(scenario_path, patients, lmn_speed, umn_speed,
                                     reinnervation_capacity, onset_region)
        super().__init__(scenario, np.arange(patients, dtype=np.int64),
                         arm or scenario.arm_names[0], recorder=UnitRecorder(np.arange(patients)))
        self.steps_planned = math.ceil(scenario.time.duration_months / self.dt - 1e-9)
        self.datacollector = mesa.DataCollector(model_reporters={
            "living": lambda m: len(m.agents.select(lambda p: p.living)),
            **{dx: _diagnosed(dx) for dx in ("PMA", "PLS", "ALS")},
        })
        self.datacollector.collect(self)

    def step(self) -> None:
        """One month of the cohort (:meth:`CohortModel.step`), then the DataCollector; stops
        at the scenario's end or when every patient has died."""
        if not self.running:
            return
        super().step()
        self.datacollector.collect(self)
        self.running = self.step_index < self.steps_planned and bool(self.state.living.any())

    # -- what the page shows ------------------------------------------------------------------

    def patient_tables(self, row: int) -> dict[str, pl.DataFrame]:
        """One patient's rows so far (``patients``, ``visits``, ``muscles``, ``events``) and its
        unit history (``units``, ``tracts``), as :func:`analysis.motor_units.read_replay`
        gives a replay's."""
        pid = int(self.ids[row])
        out = {name: _strings(pl.from_arrow(t)).filter(pl.col("patient_id") == pid)
               for name, t in tables.build(self).items() if name != "scans"}
        for name, t in self.recorder.patient_tables(self, row).items():
            out[name] = pl.from_arrow(t)
        return out

    def drawn(self) -> str:
        """The parameters as this model has them, and what it drew (one line of text)."""
        s, lat = self.scenario, self.latent
        parts = []
        for name, spec, attr in (("LMN speed", s.disease.lmn, "lmn_speed"),
                                 ("UMN speed", s.disease.umn, "umn_speed")):
            if spec is not None and central(spec.speed):
                key, value = central(spec.speed)
                drawn = getattr(lat, attr)
                parts.append(f"{name} {key} {value:.3g}/month (mean drawn "
                             f"{drawn[drawn > 0].mean() if (drawn > 0).any() else 0:.3g})")
        cap = central(s.reinnervation.capacity)
        if cap:
            parts.append(f"capacity {cap[0]} {cap[1]:.3g} (mean drawn {lat.capacity.mean():.3g})")
        regions = [COMPARTMENTS[c][0] for c in lat.onset_compartment]
        counts = ", ".join(f"{r} {regions.count(r)}" for r in REGIONS if regions.count(r))
        parts.append(f"onset regions drawn: {counts}")
        return " · ".join(parts)


def _diagnosed(dx: str):
    def count(model) -> int:
        return model.agents.select(lambda p: p.living).groupby("diagnosis").count().get(dx, 0)

    count.__name__ = f"diagnosed_{dx}"
    return count


def _strings(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(c).cast(pl.String) for c, t in frame.schema.items()
                              if isinstance(t, pl.Categorical | pl.Enum))


# ------------------------------------------------------------------------------------- figures


def cohort_figure(model: CohortModel, chosen: int | None = None, width: float = 7.0):
    """Every patient's timeline (a line coloured by latent phenotype, to death or now) with the
    diagnosis at each visit as a marker; the chosen row is highlighted."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    n = len(model.ids)
    fig = Figure(figsize=(width, 1.6 + 0.16 * n), layout="constrained")
    ax = fig.subplots()
    ax.spines[["top", "right"]].set_visible(False)
    names = list(model.scenario.phenotypes)
    phen = [names[k] for k in model.latent.phenotype]
    now = model.month
    visits = [v for v in model.examiner.visit_rows]
    if visits:
        pid = np.concatenate([v["patient_id"] for v in visits])
        month = np.concatenate([v["month"] for v in visits])
        dx = np.concatenate([v["diagnosis"] for v in visits])
    else:
        pid, month, dx = np.zeros(0, int), np.zeros(0), np.zeros(0, object)
    for row in range(n):
        end = min(model.death_month[row], now)
        colour = PHENOTYPE_COLOURS.get(phen[row], "#999999")
        ax.plot([0, end], [row, row], color=colour, linewidth=3.5 if row == chosen else 1.6,
                alpha=0.9, solid_capstyle="butt")
        if np.isfinite(model.death_month[row]):
            ax.plot(model.death_month[row], row, "x", color="black", markersize=6)
        if np.isfinite(model.symptom_onset[row]):
            ax.plot(model.symptom_onset[row], row, "|", color="black", markersize=8)
    for name, marker in DIAGNOSIS_MARKERS.items():
        hit = dx == name
        rows = np.searchsorted(model.ids, pid[hit])
        ax.scatter(month[hit], rows, marker=marker, s=22 if name != "none" else 12,
                   color=STATE_COLOURS[name], edgecolors="black", linewidths=0.3, zorder=3)
    ax.set_yticks(range(n), [str(i) for i in model.ids], fontsize=6)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0, max(12.0, now))
    ax.set_xlabel("months since the start of degeneration")
    ax.set_ylabel("patient")
    handles = [Line2D([], [], color=PHENOTYPE_COLOURS.get(p, "#999999"), label=f"latent {p}")
               for p in names]
    handles += [Line2D([], [], marker=m, linestyle="", color=STATE_COLOURS[d],
                       markeredgecolor="black", label=f"diagnosis {d}")
                for d, m in DIAGNOSIS_MARKERS.items()]
    handles += [Line2D([], [], marker="|", linestyle="", color="black", label="symptom onset"),
                Line2D([], [], marker="x", linestyle="", color="black", label="death")]
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2),
              ncols=3, frameon=False)
    ax.set_title(f"Cohort at month {now:g}", fontsize=10)
    return fig


# ------------------------------------------------------------------------------------- the page


def explorer_page(scenario_path: str | Path | None = None, patients: int = 30):
    """The SolaraViz page of an :class:`ExplorerModel` (needs the ``explore`` extra)."""
    import solara
    from mesa.visualization import SolaraViz, make_plot_component

    scenario_path = str(scenario_path or DEFAULT_SCENARIO)
    model = ExplorerModel(scenario_path=scenario_path, patients=patients)
    s = model.scenario
    params: dict = {"scenario_path": scenario_path, "patients": patients}
    for key, label, spec, lo, hi, step in (
        ("lmn_speed", "LMN speed (1/month)", s.disease.lmn and s.disease.lmn.speed, 0.005, 0.3,
         0.001),
        ("umn_speed", "UMN speed (1/month)", s.disease.umn and s.disease.umn.speed, 0.005, 0.3,
         0.001),
        ("reinnervation_capacity", "reinnervation capacity (x unit size)",
         s.reinnervation.capacity, 1.0, 12.0, 0.5),
    ):
        centre = central(spec) if spec else None
        if centre is not None:
            params[key] = {"type": "SliderFloat", "value": centre[1], "label": label,
                           "min": lo, "max": max(hi, centre[1]), "step": step}
    params["onset_region"] = {"type": "Select", "value": "scenario mix", "label": "onset region",
                              "values": list(ONSET_CHOICES)}
    chosen = solara.reactive(0)
    pool = solara.reactive(_default_pool(model))

    @solara.component
    def PatientView(model):
        from mesa.visualization.utils import update_counter

        update_counter.get()
        n = len(model.ids)
        row = min(chosen.value, n - 1)
        labels = [f"{int(model.ids[r])}" for r in range(n)]
        pools = [f"{m.name} {m.side}" for m in model.body.muscles]
        with solara.Column(classes=["motor-units"]):
            with solara.Row():
                solara.Select("patient", values=labels, value=labels[row],
                              on_value=lambda v: chosen.set(labels.index(v)),
                              classes=["patient-select"])
                solara.Select("muscle", values=pools, value=pool.value,
                              on_value=pool.set, classes=["muscle-select"])
            name, side = pool.value.rsplit(" ", 1)
            fig = muscle_figure(model.patient_tables(row), name, side, width=7.5, height=6.5)
            solara.FigureMatplotlib(fig, format="png", dpi=80)

    @solara.component
    def CohortView(model):
        from mesa.visualization.utils import update_counter

        update_counter.get()
        solara.FigureMatplotlib(cohort_figure(model, chosen.value, width=5.4), format="png",
                                dpi=80)

    @solara.component
    def Findings(model):
        from mesa.visualization.utils import update_counter

        update_counter.get()
        # HTML, not solara.Markdown: its math support loads KaTeX from a CDN the page may
        # not reach (offline machines, CI).
        solara.HTML(tag="div", unsafe_innerHTML=findings_html(model, chosen.value),
                    classes=["findings"], style="font-size: 13px")

    plot = make_plot_component({"living": "#000000", "ALS": STATE_COLOURS["ALS"],
                                "PMA": STATE_COLOURS["PMA"], "PLS": STATE_COLOURS["PLS"]})
    _fit_tiles()
    return SolaraViz(model, components=[PatientView, CohortView, Findings, plot],
                     model_params=params, name=f"progression explorer: {s.name}")


#: Grid tiles (12 columns, rows of 30 px) of the page's four components: Mesa 3.3's SolaraViz
#: gives every component a 6 x 10 tile, too small for a motor-unit figure.
TILES = (
    {"i": 0, "x": 0, "y": 0, "w": 7, "h": 19},  # the chosen patient's motor units
    {"i": 1, "x": 7, "y": 0, "w": 5, "h": 14},  # the cohort view
    {"i": 2, "x": 7, "y": 14, "w": 5, "h": 12},  # the findings
    {"i": 3, "x": 0, "y": 19, "w": 7, "h": 13},  # the DataCollector plot
)


def _fit_tiles() -> None:
    """Give the explorer's components the :data:`TILES` layout. SolaraViz (Mesa 3.3) takes the
    initial layout from ``solara_viz.make_initial_grid_layout``, with no argument to set it;
    this wraps that function for a page of exactly these four components."""
    from mesa.visualization import solara_viz

    original = getattr(solara_viz.make_initial_grid_layout, "original",
                       solara_viz.make_initial_grid_layout)

    def layout(num_components: int) -> list[dict]:
        if num_components != len(TILES):
            return original(num_components)
        return [{**tile, "moved": False} for tile in TILES]

    layout.original = original
    solara_viz.make_initial_grid_layout = layout


def findings_html(model: ExplorerModel, chosen: int) -> str:
    """The page's findings card (HTML): the month, the cohort's diagnoses (AgentSet grouping),
    the parameters as the model has them, this month's visits and the chosen patient's latest
    findings."""
    from html import escape

    agents = model.agents
    living = agents.select(lambda p: p.living)
    counts = living.groupby("diagnosis").count()
    diagnosed = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    parts = [
        f"<p><b>Month {model.month:g}</b>: {len(living)} of {len(agents)} living; "
        f"diagnoses {escape(diagnosed or 'none')}</p>",
        f"<p class='model-parameters'><i>In the model</i>: {escape(model.drawn())}</p>",
    ]
    p = agents[min(chosen, len(agents) - 1)]
    where = "" if p.living else f", died at month {p.death_month:.1f}"
    text = (f"Patient <b>{p.patient_id}</b> (latent {p.phenotype}, onset {p.onset_region}"
            f"{where}): units alive {100 * p.units_alive_fraction:.0f}%")
    if p.last_visit is not None:
        v, m = p.last_visit, p.last_muscles
        weakest = int(np.argmin(m["mrc_grade"]))
        mu = model.body.muscles[weakest]
        text += (f"; last visit month {p.last_visit_month:g}: ALSFRS-R {v['alsfrs_r']}, "
                 f"diagnosis {p.diagnosis}, weakest {mu.name} {mu.side} MRC "
                 f"{m['mrc_grade'][weakest]} (CMAP {m['cmap_mv'][weakest]:.2f} mV)")
    else:
        text += "; not seen yet"
    parts.append(f"<p>{text}</p>")
    now = [a for a in agents if a.last_visit_month == model.month]
    if now:
        rows = "".join(
            f"<tr><td>{a.patient_id}</td><td>{a.phenotype}</td><td>{a.last_visit['alsfrs_r']}"
            f"</td><td>{a.last_visit['svc_percent']:.0f}</td><td>{a.lmn_regions}/"
            f"{a.umn_regions}</td><td>{a.diagnosis}</td></tr>" for a in now[:10]
        )
        more = f"<p>... and {len(now) - 10} more</p>" if len(now) > 10 else ""
        parts.append(
            f"<p>Visits at month {model.month:g}:</p><table class='visits' cellpadding='3'>"
            "<tr><th>patient</th><th>latent</th><th>ALSFRS-R</th><th>SVC %</th>"
            f"<th>LMN/UMN regions</th><th>diagnosis</th></tr>{rows}</table>{more}"
        )
    return "".join(parts)


def _default_pool(model: CohortModel) -> str:
    names = [f"{m.name} {m.side}" for m in model.body.muscles]
    return "APB left" if "APB left" in names else names[0]


# ---------------------------------------------------------------------------------- the server


def check_installed() -> None:
    """Raise :class:`ExploreError` if the ``explore`` extra is not installed."""
    missing = []
    for module in ("solara", "altair"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ExploreError(f"the explorer needs {', '.join(missing)}: pip install "
                           "'progression[explore]'")


def server_command(host: str, port: int) -> list[str]:
    """The command that serves the explorer app (solara, production mode, no browser)."""
    return [sys.executable, "-m", "solara", "run", "progression.studies.explore_app:page",
            "--host", host, "--port", str(port), "--production", "--no-open",
            "--log-level", "warning"]


def serve(scenario: str | Path | None, *, patients: int = 30, host: str = "127.0.0.1",
          port: int = 8765, open_browser: bool = True) -> int:
    """Serve the explorer until Ctrl-C; returns the exit code.

    Raises:
        ExploreError: the extra is missing, the scenario is invalid, or ``patients`` is out of
            range.
    """
    check_installed()
    path = Path(scenario) if scenario else DEFAULT_SCENARIO
    if scenario is None and not path.is_file():
        raise ExploreError(f"no scenario given and {path} not found: progression explore "
                           "SCENARIO")
    if not 1 <= patients <= MAX_PATIENTS:
        raise ExploreError(f"--patients: 1 to {MAX_PATIENTS} (the explorer keeps every unit), "
                           f"got {patients}")
    try:
        load_scenario(path, patients=patients)
    except ScenarioError as e:
        raise ExploreError(str(e)) from None
    env = {**os.environ, ENV_SCENARIO: str(path.resolve()), ENV_PATIENTS: str(patients),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    url = f"http://{host}:{port}/"
    print(f"progression explorer: {url} ({patients} patients of {path}; Ctrl-C stops it)",
          file=sys.stderr)
    proc = subprocess.Popen(server_command(host, port), env=env)
    try:
        if open_browser:
            time.sleep(2.0)
            webbrowser.open(url)
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=10)
        return 130
