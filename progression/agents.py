"""Mesa agent bookkeeping for every agent class of the package: today those of the literal model
(:mod:`progression.literal`); the engine's :class:`~progression.model.CohortModel` creates none."""

from __future__ import annotations

import itertools
import weakref
from typing import Any


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
