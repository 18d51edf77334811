"""Machine-readable results: the rows of a results CSV and its environment as one JSON."""

from __future__ import annotations

import json
from pathlib import Path

from edgebench.report.results import read_rows


def write_json(csv_path: Path) -> Path:
    """`results.json` beside the CSV: {"environment": .env.json, "rows": [...]} with the same
    rows as the CSV, typed (numbers as numbers, missing values as null, per-layer facts in
    their column text), for scripts and dashboards."""
    env_path = csv_path.with_suffix(".env.json")
    env = json.loads(env_path.read_text()) if env_path.exists() else {}
    records = [r.json_fields() for r in read_rows(csv_path)]
    out = csv_path.with_suffix(".json")
    out.write_text(json.dumps({"environment": env, "rows": records}, indent=1, default=str))
    return out
