"""Studies: what drives the engine *and* reads its datasets, above both.

The engine (``progression``: body map, scenario schema, state, processes, kernel, examinations,
model, runner, storage) imports nothing from ``analysis``; ``analysis`` reads Parquet datasets
and imports nothing from ``progression``. What needs both lives here: the command line
(:mod:`~progression.studies.cli`), parameter sweeps (:mod:`~progression.studies.sweep`) and
calibration against published figures (:mod:`~progression.studies.calibration`).
"""
