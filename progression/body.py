"""The body map: regions, compartments and muscles with their motor-unit pools.

Data only, no behaviour beyond building arrays. Figures come from
``shared/calibration/bodymap.md`` and ``physiology.md``; each muscle row names its sources.
A compartment is a region on one side (bulbar and thoracic are midline): the LMN and UMN
hazards, their onsets and their spread are per compartment.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

REGIONS: tuple[str, ...] = ("bulbar", "cervical", "thoracic", "lumbosacral")
SIDES: tuple[str, ...] = ("left", "right", "midline")

#: (region, side) of each compartment, in index order.
COMPARTMENTS: tuple[tuple[str, str], ...] = (
    ("bulbar", "midline"),
    ("cervical", "left"),
    ("cervical", "right"),
    ("thoracic", "midline"),
    ("lumbosacral", "left"),
    ("lumbosacral", "right"),
)

#: Neighbouring compartments (rostro-caudal contiguity and the other side), for spread.
#: "contralateral" edges join the two sides of one region, "rostrocaudal" edges join regions.
CONTIGUITY: tuple[tuple[int, int, str], ...] = (
    (0, 1, "rostrocaudal"),
    (0, 2, "rostrocaudal"),
    (1, 2, "contralateral"),
    (1, 3, "rostrocaudal"),
    (2, 3, "rostrocaudal"),
    (3, 4, "rostrocaudal"),
    (3, 5, "rostrocaudal"),
    (4, 5, "contralateral"),
)

#: Share of a drawn rostro-caudal spread delay that each :data:`CONTIGUITY` edge takes. The
#: published delays run between clinical regions (bulbar, arms, legs: Fujimura-Kiyono 2011 JNNP
#: 82:1244, 150 patients: first to second region 10.8-15.2 months whatever the onset site);
#: the clinically silent thoracic region lies between arms and legs, so each of its two edges
#: takes half the delay and arms to legs take one delay, as bulbar to arms does.
SPREAD_SHARE: tuple[float, ...] = tuple(
    0.5 if kind == "rostrocaudal" and "thoracic" in (COMPARTMENTS[a][0], COMPARTMENTS[b][0])
    else 1.0
    for a, b, kind in CONTIGUITY
)

#: Spinal levels of each region, rostral first. LMN degeneration starts at one level of the
#: onset compartment and spreads level by level before it crosses to the next region (focal
#: onset and contiguous spread through the neuraxis: Ravits & La Spada 2009 Neurology 73:805;
#: Ravits 2007 Neurology 68:1571). Bulbar and thoracic are one level each.
LEVELS: dict[str, tuple[str, ...]] = {
    "bulbar": ("bulbar",),
    "cervical": ("C3", "C4", "C5", "C6", "C7", "C8", "T1"),
    "thoracic": ("thoracic",),
    "lumbosacral": ("L1", "L2", "L3", "L4", "L5", "S1"),
}

#: (compartment, level) of each node of the spread graph, compartment by compartment.
LEVEL_NODES: tuple[tuple[int, str], ...] = tuple(
    (c, level) for c, (region, _) in enumerate(COMPARTMENTS) for level in LEVELS[region]
)


def _node(compartment: int, level: str) -> int:
    return LEVEL_NODES.index((compartment, level))


def _level_edges() -> tuple[tuple[int, int, str, int], ...]:
    """Edges ``(node, node, kind, contiguity edge)`` of the spread graph: ``level`` edges join
    neighbouring levels of a compartment (contiguity edge -1); a ``rostrocaudal`` edge joins the
    caudal level of one region to the rostral level of the next; a ``contralateral`` edge joins
    each level to the same level on the other side. The last two take the delay drawn for their
    :data:`CONTIGUITY` edge."""
    edges = []
    for c, (region, _) in enumerate(COMPARTMENTS):
        levels = LEVELS[region]
        edges += [
            (_node(c, a), _node(c, b), "level", -1)
            for a, b in zip(levels[:-1], levels[1:], strict=True)
        ]
    for e, (a, b, kind) in enumerate(CONTIGUITY):
        if kind == "contralateral":
            levels = LEVELS[COMPARTMENTS[a][0]]
            edges += [(_node(a, lv), _node(b, lv), kind, e) for lv in levels]
        else:
            caudal, rostral = LEVELS[COMPARTMENTS[a][0]][-1], LEVELS[COMPARTMENTS[b][0]][0]
            edges.append((_node(a, caudal), _node(b, rostral), kind, e))
    return tuple(edges)


#: The spread graph's edges (see :func:`_level_edges`).
LEVEL_EDGES: tuple[tuple[int, int, str, int], ...] = _level_edges()

#: Functions that the ALSFRS-R items, SVC and symptom onset read.
FUNCTIONS: tuple[str, ...] = ("bulbar", "arm", "hand", "leg", "respiratory", "trunk")


@dataclass(frozen=True)
class Muscle:
    """One muscle of the body map (one side of a paired muscle).

    Attributes:
        name: muscle name as in the output tables (e.g. ``"APB"``).
        region: one of :data:`REGIONS`; follows the segments (diaphragm C3-C5 is cervical).
        side: ``left``, ``right`` or ``midline``.
        segments: spinal segments or brainstem nucleus supplying it.
        axon_length_cm: cell body to motor point (cm).
        units: motor units in a healthy adult.
        innervation_ratio: mean muscle fibres per unit (fibres).
        size_range: ratio of the largest to the smallest unit (Fuglevand 1993: about 100).
        vulnerability: relative LMN hazard of the muscle (split hand: APB, FDI above ADM).
        cmap_mv: healthy CMAP amplitude (mV).
        mup_uv: healthy needle MUP amplitude (microvolts).
        munix: healthy MUNIX (index units), where published.
        cmct_ms: healthy central motor conduction time (ms) if a TMS target, else None.
        functions: which of :data:`FUNCTIONS` the muscle serves.
        sources: where the figures come from.
    """

    name: str
    region: str
    side: str
    segments: tuple[str, ...]
    axon_length_cm: float
    units: int
    innervation_ratio: float
    cmap_mv: float
    mup_uv: float
    functions: tuple[str, ...]
    vulnerability: float = 1.0
    size_range: float = 100.0
    munix: float | None = None
    cmct_ms: float | None = None
    sources: str = ""

    @property
    def compartment(self) -> int:
        """Index into :data:`COMPARTMENTS`."""
        side = self.side if self.region in ("cervical", "lumbosacral") else "midline"
        return COMPARTMENTS.index((self.region, side))

    @property
    def levels(self) -> tuple[int, ...]:
        """Nodes of :data:`LEVEL_NODES` that supply the muscle: its segments' levels in its
        compartment, or every level of it if none is listed there (bulbar, thoracic)."""
        own = [i for i, (c, lv) in enumerate(LEVEL_NODES) if c == self.compartment]
        return tuple(i for i in own if LEVEL_NODES[i][1] in self.segments) or tuple(own)

    @property
    def fibres(self) -> float:
        """Healthy fibre total (fibres)."""
        return self.units * self.innervation_ratio


def _pair(**kw) -> list[Muscle]:
    return [Muscle(side=side, **kw) for side in ("left", "right")]


def default_muscles() -> tuple[Muscle, ...]:
    """The default body map (bodymap.md section A; TC = textbook consensus)."""
    hand = dict(region="cervical", segments=("C8", "T1"), functions=("hand", "arm"))
    leg = dict(region="lumbosacral", functions=("leg",))
    muscles = [
        Muscle(
            "tongue",
            "bulbar",
            "midline",
            ("XII",),
            12.0,
            units=150,
            innervation_ratio=100,
            cmap_mv=9.0,
            mup_uv=350,
            functions=("bulbar",),
            vulnerability=1.0,
            sources="CMAP Muellbacher 1994 JNNP 57:309; unit count not published (TC estimate)",
        ),
        *_pair(
            name="APB",
            axon_length_cm=80,
            units=200,
            innervation_ratio=150,
            cmap_mv=10.2,
            mup_uv=900,
            vulnerability=1.3,
            munix=191,
            cmct_ms=7.5,
            sources="MUNE Galea 1991, Brown 1972; MUNIX Cao 2020; CMAP Buschbacher 1999",
            **hand,
        ),
        *_pair(
            name="FDI",
            axon_length_cm=80,
            units=120,
            innervation_ratio=340,
            cmap_mv=12.0,
            mup_uv=900,
            vulnerability=1.3,
            cmct_ms=7.5,
            sources="Feinstein 1955 (120 MUs, IR 340); CMAP Czech multicentre",
            **hand,
        ),
        *_pair(
            name="ADM",
            axon_length_cm=82,
            units=180,
            innervation_ratio=150,
            cmap_mv=11.0,
            mup_uv=900,
            vulnerability=0.8,
            munix=179,
            cmct_ms=7.5,
            sources="MUNIX Cao 2020; CMAP Buschbacher 1999",
            **hand,
        ),
        *_pair(
            name="biceps",
            region="cervical",
            segments=("C5", "C6"),
            axon_length_cm=34,
            units=180,
            innervation_ratio=209,
            cmap_mv=7.9,
            mup_uv=450,
            vulnerability=0.9,
            munix=180,
            functions=("arm", "trunk"),
            sources="MUNIX Cao 2020; IR Gath & Stalberg 1981; CMAP derived MUNIX x MUSIX",
        ),
        *_pair(
            name="diaphragm",
            region="cervical",
            segments=("C3", "C4", "C5"),
            axon_length_cm=35,
            units=300,
            innervation_ratio=200,
            cmap_mv=0.6,
            mup_uv=300,
            vulnerability=1.0,
            functions=("respiratory",),
            sources="hemidiaphragm; phrenic CMAP Resman-Gaspersc 2008; unit count TC",
        ),
        Muscle(
            "intercostals",
            "thoracic",
            "midline",
            tuple(f"T{i}" for i in range(1, 12)),
            25.0,
            units=300,
            innervation_ratio=200,
            cmap_mv=3.5,
            mup_uv=300,
            vulnerability=1.0,
            functions=("respiratory", "trunk"),
            sources="CMAP proxy Kang 1992 (rectus abdominis); unit count TC",
        ),
        *_pair(
            name="TA",
            segments=("L4", "L5"),
            axon_length_cm=78,
            units=150,
            innervation_ratio=329,
            cmap_mv=6.3,
            mup_uv=662,
            vulnerability=1.1,
            munix=152,
            cmct_ms=14.0,
            sources="MUNIX Cao 2020; IR Gath & Stalberg 1981; MUP de Carvalho JNNP",
            **leg,
        ),
        *_pair(
            name="EDB",
            segments=("L5", "S1"),
            axon_length_cm=108,
            units=150,
            innervation_ratio=100,
            cmap_mv=6.0,
            mup_uv=700,
            vulnerability=1.2,
            cmct_ms=14.0,
            sources="MUNE Galea 1991 (131); CMAP Buschbacher 1999",
            **leg,
        ),
        *_pair(
            name="quadriceps",
            segments=("L2", "L3", "L4"),
            axon_length_cm=52,
            units=230,
            innervation_ratio=500,
            cmap_mv=7.0,
            mup_uv=600,
            vulnerability=0.9,
            sources="VM MUNE Galea 1991 (229); CMAP TC",
            **(leg | {"functions": ("leg", "trunk")}),
        ),
    ]
    return tuple(muscles)


@dataclass(frozen=True)
class Body:
    """The muscles of a scenario, laid out as flat unit arrays (all muscles side by side).

    Attributes:
        muscles: the muscles, in output order.
        start: index of each muscle's first unit in the flat unit axis, plus the total at the end.
        muscle_of: (units,) muscle index of each unit.
        compartment_of_muscle: (muscles,) compartment index.
        base: (units,) healthy fibres of each unit (Fuglevand exponential sizes).
        size_weight: (units,) unit size over its muscle's mean unit size.
    """

    muscles: tuple[Muscle, ...]
    start: np.ndarray = field(repr=False)
    muscle_of: np.ndarray = field(repr=False)
    compartment_of_muscle: np.ndarray = field(repr=False)
    base: np.ndarray = field(repr=False)
    size_weight: np.ndarray = field(repr=False)

    @classmethod
    def from_muscles(cls, muscles: tuple[Muscle, ...]) -> Body:
        counts = np.array([m.units for m in muscles])
        start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        muscle_of = np.repeat(np.arange(len(muscles)), counts).astype(np.int32)
        base = np.concatenate([unit_sizes(m) for m in muscles]).astype(np.float32)
        mean_base = np.array([m.innervation_ratio for m in muscles])[muscle_of]
        return cls(
            muscles=muscles,
            start=start,
            muscle_of=muscle_of,
            compartment_of_muscle=np.array([m.compartment for m in muscles], dtype=np.int32),
            base=base,
            size_weight=(base / mean_base).astype(np.float32),
        )

    @property
    def n_units(self) -> int:
        return int(self.start[-1])

    @property
    def n_muscles(self) -> int:
        return len(self.muscles)

    @property
    def healthy_fibres(self) -> np.ndarray:
        """(muscles,) healthy fibre totals."""
        return np.add.reduceat(self.base.astype(np.float64), self.start[:-1])

    def index(self, name: str, side: str) -> int:
        for i, m in enumerate(self.muscles):
            if m.name == name and m.side == side:
                return i
        raise KeyError(f"no muscle {name!r} on side {side!r}")


def unit_sizes(m: Muscle) -> np.ndarray:
    """Healthy fibres per unit for one pool: exponential in rank, ``size_range``-fold span.

    ``base_i = f_min * exp(ln(R) * i / (N - 1))`` (Fuglevand, Winter & Patla 1993), scaled so
    that the pool holds ``units * innervation_ratio`` fibres.
    """
    rank = np.arange(m.units) / max(m.units - 1, 1)
    sizes = np.exp(np.log(m.size_range) * rank)
    return sizes * (m.fibres / sizes.sum())


def with_overrides(muscles: tuple[Muscle, ...], overrides: dict[str, dict]) -> tuple[Muscle, ...]:
    """Apply per-muscle field overrides keyed by muscle name (both sides)."""
    return tuple(replace(m, **overrides.get(m.name, {})) for m in muscles)
