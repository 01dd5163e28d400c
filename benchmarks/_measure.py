"""Run one simulation and print its peak memory as JSON (used by run.py in a subprocess).

python benchmarks/_measure.py SCENARIO OUT PATIENTS WORKERS CHUNK
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

# The same code as run.py measures (the repository's, not another installed copy).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from progression.memory import claim_process  # noqa: E402
from progression.runner import run  # noqa: E402
from progression.scenario import load_scenario  # noqa: E402

if __name__ == "__main__":
    claim_process()  # as the command line does
    scenario_path, out, patients, workers, chunk = sys.argv[1:6]
    scenario = load_scenario(scenario_path, patients=int(patients))
    summary = run(
        scenario, out, workers=int(workers), chunk_size=int(chunk), overwrite=True, progress=False
    )
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "peak_rss_mb": max(own, children),
                "client_rss_mb": own,
                "worker_rss_mb": children,
                "wall_s": summary.wall_seconds,
            }
        )
    )
