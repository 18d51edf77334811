"""Compare two runs: the same variants, the change in p50, and whether it beats the noise.

Noise is read from the rows themselves: a row whose p90 is 30% above its p50 cannot show a
10% change between runs. The threshold for a pair is the larger relative spread (p90/p50 - 1)
of its two rows, never below NOISE_FLOOR: committed re-runs on the same x86 host moved up to
7% with spreads of 1-21%, emulated-board re-runs up to 1.6x with spreads up to 1.1x.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from edgebench.report.document import md_table
from edgebench.report.tables import Results, load

NOISE_FLOOR = 0.05
# Rows are the same measurement when these agree: what ran (model, variant, runtime, threads)
# and where (machine = host + CPU, its ISA flags, the board kind, emulation), not the target
# file's name: x86-core1 and x86-native on one host compare. Two targets of one side that
# still collide are told apart by their name.
MATCH = ["model", "variant", "runtime", "threads", "machine", "isa", "board_kind", "emulated"]
SHOWN = ["model", "variant", "runtime", "threads"]


@dataclass(frozen=True)
class CompareConfig:
    noise_floor: float = NOISE_FLOOR  # relative change always treated as noise


def spread(rows: pd.DataFrame) -> pd.Series:
    """Relative spread of each row's own samples: p90/p50 - 1 (std/p50 if p90 is missing)."""
    s = rows["p90_ms"] / rows["p50_ms"] - 1
    return s.where(s.notna(), rows["std_ms"] / rows["p50_ms"])


def _with_isa(res: Results) -> pd.DataFrame:
    """The rows with the ISA flags of the file each came from (its .env.json)."""
    rows = res.rows.copy()
    rows["isa"] = rows["source"].map(lambda s: str(res.envs.get(s, {}).get("isa", "")))
    return rows


def compare(a_paths: list[str | Path], b_paths: list[str | Path],
            cfg: CompareConfig | None = None) -> pd.DataFrame:
    """One row per measurement (MATCH) in A or B: p50 in each, change = B/A, the noise
    threshold and a verdict."""
    cfg = cfg or CompareConfig()
    a, b = _with_isa(load(a_paths)), _with_isa(load(b_paths))
    on = list(MATCH)
    if a.duplicated(on).any() or b.duplicated(on).any():
        on.append("target")
    cols = [*on, *(c for c in ("target", "status", "p50_ms", "p90_ms", "std_ms", "quality",
                               "error") if c not in on)]
    m = a[cols].merge(b[cols], on=on, how="outer", suffixes=("_a", "_b"), indicator=True)
    if "target" not in on:
        m["target"] = m["target_b"].where(m["target_b"].notna(), m["target_a"])
        m["target"] = np.where(m["target_a"].notna() & m["target_b"].notna()
                               & (m["target_a"] != m["target_b"]),
                               m["target_a"].astype(str) + " -> " + m["target_b"].astype(str),
                               m["target"])
    for side in ("a", "b"):
        m[f"spread_{side}"] = spread(m.rename(columns={f"p50_ms_{side}": "p50_ms",
                                                       f"p90_ms_{side}": "p90_ms",
                                                       f"std_ms_{side}": "std_ms"}))
    m["change"] = m["p50_ms_b"] / m["p50_ms_a"]
    m["noise"] = np.fmax(np.fmax(m["spread_a"], m["spread_b"]), cfg.noise_floor)
    m["noise"] = m["noise"].fillna(cfg.noise_floor)
    m["verdict"] = [_verdict(r) for _, r in m.iterrows()]
    order = m["change"].map(lambda c: -abs(math.log(c)) if c and c == c else 0)
    return m.assign(_order=order).sort_values(["_order", *SHOWN]).drop(columns="_order")


def slower(m: pd.DataFrame) -> list[str]:
    """The measurements that got slower beyond noise (what a CI gate fails on)."""
    return [f"{r['model']} {r['variant']} {r['runtime']} {r['change']:.2f}x"
            for _, r in m[m["verdict"] == "slower"].iterrows()]


def _verdict(r: pd.Series) -> str:
    if r["_merge"] == "left_only":
        return "only in A"
    if r["_merge"] == "right_only":
        return "only in B"
    if r["status_a"] != "ok" or r["status_b"] != "ok":
        return f"status {r['status_a']} -> {r['status_b']}"
    if abs(math.log(r["change"])) <= math.log1p(r["noise"]):
        return "within noise"
    return "slower" if r["change"] > 1 else "faster"


def markdown(m: pd.DataFrame, a_name: str = "A", b_name: str = "B") -> str:
    counts = m["verdict"].value_counts()
    lines = [f"# compare: A = {a_name}, B = {b_name}", "",
             ", ".join(f"{n} {v}" for v, n in counts.items()), "",
             "change = p50 B / p50 A (< 1: B is faster); beyond noise when the change exceeds "
             f"the larger p90/p50 spread of the two rows (at least {NOISE_FLOOR:.0%}).", ""]
    if not (m["_merge"] == "both").any() and len(m):
        lines += ["**Nothing compared**: no measurement of A matches one of B on model, "
                  "variant, runtime, threads and machine + ISA (another host or CPU is "
                  "another measurement).", ""]
    rows = []
    for _, r in m.iterrows():
        change = r["change"]
        rows.append([r["model"], f"`{r['variant']}`", r["runtime"], str(r["target"]),
                     _f(r["p50_ms_a"]), _f(r["p50_ms_b"]),
                     f"{change:.3f}x" if change == change else "",
                     f"±{r['noise']:.0%}" if r["_merge"] == "both" else "",
                     f"**{r['verdict']}**"
                     if r["verdict"] in ("slower", "faster") else r["verdict"],
                     str(r["machine"])])
    lines += md_table(["model", "variant", "runtime", "target", "p50 A ms", "p50 B ms",
                       "change", "noise", "verdict", "machine"], rows)
    return "\n".join([*lines, ""])


def _f(v: object) -> str:
    return "" if v is None or v != v else f"{v:.4g}"
