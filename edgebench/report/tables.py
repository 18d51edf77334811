"""Tables behind the report: comparable groups, ratios, Pareto fronts and the headline.

A ratio is only taken inside one comparable group: same machine, target, threads, board kind
and emulation. A row from another machine (or qemu) never divides a row from this one, even
when the model and variant match.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from edgebench.report.results import COLUMNS, KEY, OutputError

GROUP = ["machine", "target", "threads", "emulated", "board_kind"]
PEERS = ("pytorch", "onnxruntime", "executorch")
REQUIRED = {"model", "variant", "runtime", "target", "status", "p50_ms", "machine"}


@dataclass
class Results:
    """Rows of one or more results CSVs with the environment each was measured in."""

    rows: pd.DataFrame
    envs: dict[str, dict] = field(default_factory=dict)  # source path -> .env.json
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)

    @property
    def ok(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] == "ok"]

    @property
    def failed(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] != "ok"]


def _bool(v: object) -> bool:
    return str(v).strip().lower() in ("true", "1", "yes")


def board_kind(board: object) -> str:
    """A board without its port: servers of one farm on one host are one kind of board; a
    board on another host is not (its clock is another machine's)."""
    text = "" if board is None or pd.isna(board) else str(board)
    return re.sub(r":\d+$", "", text)


def load(paths: list[str | Path]) -> Results:
    """Read results CSVs (files with other columns, e.g. accuracy tables, are skipped and
    listed; none left is an OutputError); within one machine a key measured twice keeps its
    last row."""
    frames, envs, skipped = [], {}, []
    for p in map(Path, paths):
        try:
            df = pd.read_csv(p, keep_default_na=False, na_values=[""])
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            skipped.append((str(p), f"unreadable: {e}"))
            continue
        missing = REQUIRED - set(df.columns)
        if missing:
            why = f"not an edgebench results file (no {', '.join(sorted(missing))})"
            skipped.append((str(p), why))
            continue
        df = df.reindex(columns=COLUMNS)
        df["source"] = str(p)
        env_path = p.with_suffix(".env.json")
        if env_path.exists():
            envs[str(p)] = json.loads(env_path.read_text())
        frames.append(df)
    if not frames:
        raise OutputError("no edgebench results in " + "; ".join(
            f"{p} ({why})" for p, why in skipped))
    rows = pd.concat(frames, ignore_index=True)
    rows["emulated"] = rows["emulated"].map(_bool)
    rows["board_kind"] = rows["board"].map(board_kind)
    rows["threads"] = pd.to_numeric(rows["threads"], errors="coerce").fillna(0).astype(int)
    rows["status"] = rows["status"].fillna("failed")
    rows = rows.drop_duplicates(subset=[*KEY, "machine", "board_kind"], keep="last")
    return Results(derive(rows.reset_index(drop=True)), envs, skipped)


def group_label(key: tuple) -> str:
    machine, target, threads, emulated, board = key
    text = f"{target}, machine {machine}, {threads} thread{'s' if threads != 1 else ''}"
    if board:
        text += f", board {board}"
    return text + (", EMULATED" if emulated else "")


def short_label(key: tuple, machines: int = 1) -> str:
    """The group in a table cell: target (+ machine when several), EMULATED when qemu."""
    machine, target, threads, emulated, _board = key
    return (f"{target}" + (f" @{machine}" if machines > 1 else "") + f", {threads} thr"
            + (", EMULATED" if emulated else ""))


def group_slug(key: tuple) -> str:
    machine, target, threads, emulated, board = key
    slug = (f"{target}-{machine}-{threads}t" + (f"-{board}" if board else "")
            + ("-emulated" if emulated else ""))
    return re.sub(r"[^A-Za-z0-9._-]+", "_", slug)


def prune_method(variant: str) -> str:
    """`prune=block:8x1:0.9+sparse` -> `block:8x1 +sparse`: the method without its amount."""
    m = re.search(r"prune=([^+]+)", variant)
    if not m:
        return ""
    parts = [p for p in m.group(1).split(":") if not re.fullmatch(r"[\d.]+|ft\d+|global", p)]
    if parts[:1] == ["nm"]:  # nm:2:4 is the pattern, not an amount
        parts = ["nm:" + ":".join(re.findall(r"\d+", m.group(1))[:2])]
    sparse = re.search(r"\+sparse(=\w+)?", variant)
    return ":".join(parts) + (f" +{sparse.group(0)[1:]}" if sparse else "")


def technique(row: pd.Series) -> str:
    """What was done to the model, in the words of the headline table."""
    variant = str(row["variant"])
    if variant == "fp32":
        return "fp32"
    parts = []
    if "prune=" in variant:
        kind = row.get("prune_kind")
        parts.append({"structured": "structured pruning",
                      "sparse-kernel": "pruning + sparse kernels",
                      "masked": "pruning, dense kernels"}.get(kind, "pruning"))
    if "quant=" in variant:
        q = re.search(r"quant=([^:+]+)", variant).group(1)
        parts.append(f"quant {q}" + (" (simulated)" if row.get("quant_kind") == "simulated"
                                     else ""))
    return " + ".join(parts)


def derive(df: pd.DataFrame) -> pd.DataFrame:
    """Add the ratio columns, each against rows of the same comparable group only:
    speedup_vs_fp32 (same runtime's FP32), vs_<peer> (peer on the same variant, else its FP32),
    weights_removed (vs the FP32 parameter count), size ratios and accuracy change."""
    df = df.copy()
    # a percent metric on real data (top1, CREPE's rpa) is an accuracy; fidelity rows (random
    # weights, no data) say so, whatever their agreement
    evaluation = df.get("evaluation", pd.Series(np.nan, index=df.index))
    metric = (df["metric_value"] / 100 if "metric_value" in df else np.nan)
    real = evaluation.eq("accuracy") & df.get("metric", pd.Series("", index=df.index)).isin(
        ["top1", "rpa"])
    acc = df["accuracy"].where(df["accuracy"].notna(), metric.where(real) if real.any()
                               else np.nan)
    df["quality"] = acc.where(acc.notna(), df["top1_agreement"])
    df["quality_kind"] = np.where(acc.notna(), "accuracy",
                                  np.where(evaluation.fillna("").str.startswith("fidelity"),
                                           evaluation.fillna(""), "top-1 agreement"))
    df["technique"] = df.apply(technique, axis=1)
    df["method"] = df["variant"].map(prune_method)
    fp32_params = (df[df["variant"] == "fp32"].groupby("model")["params"].max())
    base_params = df["model"].map(fp32_params)
    df["weights_removed"] = 1 - df["nonzero_params"] / base_params
    for col in ("speedup_vs_fp32", "size_vs_fp32", "gzip_vs_fp32", "quality_delta",
                *(f"vs_{p}" for p in PEERS)):
        df[col] = np.nan
    ok = df["status"] == "ok"
    for _, g in df[ok].groupby([*GROUP, "model"], dropna=False):
        fp32 = g[g["variant"] == "fp32"].set_index("runtime")
        for i, r in g.iterrows():
            if r["runtime"] in fp32.index:
                b = fp32.loc[r["runtime"]]
                df.loc[i, "speedup_vs_fp32"] = b["p50_ms"] / r["p50_ms"]
                df.loc[i, "size_vs_fp32"] = r["artifact_bytes"] / b["artifact_bytes"]
                df.loc[i, "gzip_vs_fp32"] = r["artifact_gzip_bytes"] / b["artifact_gzip_bytes"]
                df.loc[i, "quality_delta"] = r["quality"] - b["quality"]
            for p in PEERS:
                if p == r["runtime"]:
                    continue
                peer = g[(g["runtime"] == p) & (g["variant"] == r["variant"])]
                if not len(peer) and p in fp32.index:
                    peer = fp32.loc[[p]]
                if len(peer):
                    df.loc[i, f"vs_{p}"] = peer["p50_ms"].iloc[0] / r["p50_ms"]
    return df


def pareto_mask(latency: pd.Series, quality: pd.Series) -> pd.Series:
    """True for rows no other row beats on both: faster-or-equal and at least as good, one of
    them strictly."""
    lat, q = latency.to_numpy(float), quality.to_numpy(float)
    keep = []
    for i in range(len(lat)):
        dominated = np.any((lat <= lat[i]) & (q >= q[i]) & ((lat < lat[i]) | (q > q[i])))
        keep.append(not dominated and not np.isnan(lat[i]) and not np.isnan(q[i]))
    return pd.Series(keep, index=latency.index)


MAX_LOSS_PTS = 1.0  # headline: best variant that loses at most this much accuracy


def headline(df: pd.DataFrame) -> pd.DataFrame:
    """Per comparable group, model and technique: edgebench's (TVM) best variant.

    Best = fastest among those losing at most MAX_LOSS_PTS points of accuracy; a model scored
    only by agreement with FP32 (random-weight ImageNet models) has no accuracy to lose, so its
    fastest variant is shown with the agreement beside it.
    """
    tvm = df[(df["status"] == "ok") & (df["runtime"] == "tvm") & (df["variant"] != "fp32")
             & df["speedup_vs_fp32"].notna()]
    out = []
    machines = df["machine"].nunique()
    for _, g in tvm.groupby([*GROUP, "model", "technique"], sort=True, dropna=False):
        scored = g["quality_kind"].eq("accuracy").all()
        pool = g[g["quality_delta"] >= -MAX_LOSS_PTS / 100 - 1e-9] if scored else g
        if pool.empty:
            rule = f"none within {MAX_LOSS_PTS:g} pt: least loss"
            best = g.loc[g["quality_delta"].idxmax()]
        else:
            rule = f"fastest within {MAX_LOSS_PTS:g} pt" if scored else "fastest (agreement only)"
            best = pool.loc[pool["speedup_vs_fp32"].idxmax()]
        # vs the fastest peer: the smallest peer/edgebench ratio
        peers = [best[f"vs_{p}"] for p in PEERS if pd.notna(best[f"vs_{p}"])]
        out.append({
            "group": short_label(tuple(best[c] for c in GROUP), machines),
            "model": best["model"], "technique": best["technique"], "variant": best["variant"],
            "p50_ms": best["p50_ms"], "speedup_vs_fp32": best["speedup_vs_fp32"],
            "gzip_vs_fp32": best["gzip_vs_fp32"], "quality_kind": best["quality_kind"],
            "quality": best["quality"], "quality_delta": best["quality_delta"],
            "vs_best_peer": min(peers) if peers else np.nan,
            "rule": rule, "candidates": len(g),
        })
    return pd.DataFrame(out)
