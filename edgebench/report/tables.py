"""Tables behind the report: comparable groups, ratios, Pareto fronts and the headline.

A ratio is only taken inside one comparable group: same machine, target, threads, board kind
and emulation. A row from another machine (or qemu) never divides a row from this one, even
when the model and variant match.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from edgebench.report.results import COLUMNS, KEY, OutputError, read_csv
from edgebench.runtimes import PEERS

GROUP = ["machine", "target", "threads", "emulated", "board_kind"]
# Columns agreed between helpers (metric_* from the data work); read when a file has them.
CONTRACT = ("metric", "metric_value", "metric_fp32", "metric_drop", "evaluation")
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
            df, bad = read_csv(p)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError,
                pd.errors.EmptyDataError) as e:
            skipped.append((str(p), f"unreadable: {e}"))
            continue
        if bad:
            print(f"edgebench: warning: {p}: {bad} malformed line(s) left out (a row cut "
                  "mid-write?)", file=sys.stderr)
        missing = REQUIRED - set(df.columns)
        if missing:
            why = f"not an edgebench results file (no {', '.join(sorted(missing))})"
            skipped.append((str(p), why))
            continue
        df = df.reindex(columns=[*COLUMNS, *(c for c in CONTRACT if c not in COLUMNS)])
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
    # one label per row: "accuracy" (real data, trained weights) or a fidelity kind (random
    # weights, no data), whatever its agreement; `quality` is the accuracy where there is one
    df["evaluation_kind"] = df.apply(evaluation, axis=1) if len(df) else pd.Series(dtype=str)
    acc = accuracy(df)
    df["quality"] = acc.where(acc.notna(), df["top1_agreement"])
    df["technique"] = df.apply(technique, axis=1)
    df["method"] = df["variant"].map(prune_method)
    df["precision"] = df.apply(precision, axis=1)
    fp32_params = (df[df["variant"] == "fp32"].groupby("model")["params"].max())
    base_params = df["model"].map(fp32_params)
    df["weights_removed"] = 1 - df["nonzero_params"] / base_params
    for col in ("speedup_vs_fp32", "size_vs_fp32", "gzip_vs_fp32", "quality_delta",
                *(f"vs_{p}" for p in PEERS)):
        df[col] = np.nan
    df["drop_pts"] = np.nan
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
    df.loc[ok, "drop_pts"] = df[ok].apply(metric_drop, axis=1)
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


MAX_DROP_PTS = 1.0  # default --max-drop: a variant losing more is never "best"
FIDELITY_MODELS = ("resnet18", "mobilenetv2", "encoder")  # 224x224 / random-init built-ins


def accuracy(df: pd.DataFrame) -> pd.Series:
    """Per row, its accuracy as a fraction, on rows evaluated as accuracy only: the accuracy
    column, else a percent metric on real data (top1, CREPE's rpa); NaN elsewhere (the row's
    quality is then its top-1 agreement with FP32)."""
    real = df["evaluation_kind"].eq("accuracy")
    metric = df["metric_value"] / 100 if "metric_value" in df else np.nan
    percent = df.get("metric", pd.Series("", index=df.index)).isin(["top1", "rpa"])
    acc = df["accuracy"].where(df["accuracy"].notna(), metric.where(percent))
    return acc.where(real)


def evaluation(row: pd.Series) -> str:
    """"accuracy" (real data, trained weights) or a fidelity kind: the `evaluation` column when
    the row has one, else random-init built-ins and user models are fidelity."""
    ev = row.get("evaluation")
    if isinstance(ev, str) and ev:
        return ev
    model = str(row["model"])
    if model in FIDELITY_MODELS or ":" in model:
        return "fidelity (random weights)"
    return "accuracy" if pd.notna(row.get("accuracy")) else "fidelity (no data)"


def metric_drop(row: pd.Series) -> float:
    """Points lost against FP32 (positive = worse): `metric_drop` when written, else accuracy
    vs the same runtime's FP32 row, else 100 x (1 - top-1 agreement with FP32)."""
    drop = row.get("metric_drop")
    if pd.notna(drop):
        return float(drop)
    if pd.notna(row.get("accuracy")) and pd.notna(row.get("quality_delta")):
        return -100.0 * float(row["quality_delta"])
    if pd.notna(row.get("top1_agreement")):
        return 100.0 * (1.0 - float(row["top1_agreement"]))
    return np.nan


def metric_text(row: pd.Series) -> str:
    """The score as shown: `top1 99.2%` / `agreement 97.0%`, labelled fidelity when it is."""
    if pd.notna(row.get("metric_value")) and isinstance(row.get("metric"), str):
        name, value = row["metric"], float(row["metric_value"])
        unit = "%" if name in ("top1", "rpa", "agreement") else ""
        text = f"{name} {value:.4g}{unit}"
    elif pd.notna(row.get("accuracy")):
        text = f"top1 {100 * float(row['accuracy']):.1f}%"
    elif pd.notna(row.get("top1_agreement")):
        text = f"agreement {100 * float(row['top1_agreement']):.1f}%"
    else:
        return "-"
    ev = row.get("evaluation_kind") or evaluation(row)
    return text if ev == "accuracy" else f"{text} [{ev}]"


def precision(row: pd.Series) -> str:
    """What the row computes in: int8 / fp16 on our build, `simulated` (fake-quant graph in
    float: never a real peer), else fp32."""
    kind = row.get("quant_kind")
    if not isinstance(kind, str) or not kind:
        return "fp32"
    return {"int8-peer": "int8"}.get(kind, kind)  # a peer's own int8 build is real int8


def _within(df: pd.DataFrame, max_drop: float) -> pd.Series:
    return df["drop_pts"].notna() & (df["drop_pts"] <= max_drop + 1e-9)


def untuned(row: pd.Series) -> bool:
    """A TVM row built with `--trials 0` on TVM's own ops (not on our FP32 or int8 kernels):
    untuned Relax code (~50x slower), a correctness or accuracy row, never a speed figure
    (no bar, never "best")."""
    ours = (isinstance(row.get("fp32_layers"), str) and row["fp32_layers"]) or (
        row.get("quant_kind") == "int8")
    return row.get("runtime") == "tvm" and row.get("tuned_trials") == 0 and not ours


def _tuned(df: pd.DataFrame) -> pd.Series:
    return ~df.apply(untuned, axis=1).astype(bool) if len(df) else pd.Series(True, df.index)


def fastest_real_peer(g: pd.DataFrame, prec: str, max_drop: float) -> pd.Series | None:
    """The fastest ok peer row of one group and model computing in `prec` (never a simulated
    fake-quant row) and itself within the allowed drop; None if there is none."""
    peers = g[g["runtime"].isin(PEERS) & (g["status"] == "ok") & (g["precision"] == prec)
              & _within(g, max_drop)]
    return None if peers.empty else peers.loc[peers["p50_ms"].idxmin()]


def peer_label(peer: pd.Series) -> str:
    """`onnxruntime, fp32` or `executorch prune=channel:0.5, fp32`."""
    variant = "" if peer["variant"] == "fp32" else f" {peer['variant']}"
    return f"{peer['runtime']}{variant}, {peer['precision']}"


def headline(df: pd.DataFrame, max_drop: float = MAX_DROP_PTS) -> pd.DataFrame:
    """Per comparable group, model and technique: edgebench's (TVM) fastest variant among
    those losing at most `max_drop` points of their metric against FP32. A technique with no
    such variant is listed as having none (never its least-bad collapse). Speedups: vs our
    FP32 and vs the fastest real peer of the same precision. An untuned TVM row (`untuned`) is
    never best: its time is not a speed figure."""
    ok = df[df["status"] == "ok"]
    tvm = ok[(ok["runtime"] == "tvm") & (ok["variant"] != "fp32")
             & ok["speedup_vs_fp32"].notna() & _tuned(ok)]
    out = []
    machines = df["machine"].nunique()
    for key, g in tvm.groupby([*GROUP, "model", "technique"], sort=True, dropna=False):
        pool = g[_within(g, max_drop)]
        row = {"group": short_label(tuple(key[:len(GROUP)]), machines), "model": key[-2],
               "technique": key[-1], "candidates": len(g)}
        if pool.empty:
            worst = g["drop_pts"].min()
            out.append({**row, "variant": "-", "rule": f"none within {max_drop:g} pt "
                        f"(least drop {worst:.1f} pt)"})
            continue
        best = pool.loc[pool["speedup_vs_fp32"].idxmax()]
        same = ok[ok[[*GROUP, "model"]].eq(best[[*GROUP, "model"]]).all(axis=1)]
        peer = fastest_real_peer(same, best["precision"], max_drop)
        out.append({**row, "variant": best["variant"], "p50_ms": best["p50_ms"],
                    "speedup_vs_fp32": best["speedup_vs_fp32"],
                    "gzip_vs_fp32": best["gzip_vs_fp32"],
                    "metric": metric_text(best), "evaluation": best["evaluation_kind"],
                    "drop_pts": best["drop_pts"],
                    "vs_best_peer": (peer["p50_ms"] / best["p50_ms"]
                                     if peer is not None else np.nan),
                    "best_peer": (peer_label(peer) if peer is not None
                                  else f"no real {best['precision']} peer"),
                    "rule": f"fastest within {max_drop:g} pt"})
    return pd.DataFrame(out)


def summary(df: pd.DataFrame, max_drop: float = MAX_DROP_PTS) -> pd.DataFrame:
    """The table `edgebench run` ends with: per group and model, our fastest variant (FP32
    included) within `max_drop` points of FP32's metric, its speedup vs our FP32 and vs the
    fastest real peer of the same precision (where no peer computes in that precision, the
    fastest real peer of any, named with its precision), its size and metric."""
    ok = df[df["status"] == "ok"]
    out = []
    machines = df["machine"].nunique()
    for key, g in ok.groupby([*GROUP, "model"], sort=False, dropna=False):
        tvm = g[(g["runtime"] == "tvm") & _within(g, max_drop) & _tuned(g)]
        if tvm.empty:
            continue
        best = tvm.loc[tvm["p50_ms"].idxmin()]
        peer = fastest_real_peer(g, best["precision"], max_drop)
        if peer is None:  # e.g. int8: no peer runs real int8 here; then the fastest real one
            peer = next((p for p in (fastest_real_peer(g, prec, max_drop)
                                     for prec in ("fp32", "fp16", "int8")) if p is not None),
                        None)
        out.append({
            "group": short_label(tuple(key[:len(GROUP)]), machines), "model": key[-1],
            "variant": best["variant"], "precision": best["precision"],
            "p50_ms": best["p50_ms"],
            "vs_tvm_fp32": best["speedup_vs_fp32"],
            "vs_best_peer": peer["p50_ms"] / best["p50_ms"] if peer is not None else np.nan,
            "best_peer": peer_label(peer) if peer is not None else "no real peer",
            "artifact_bytes": best["artifact_bytes"], "size_vs_fp32": best["size_vs_fp32"],
            "metric": metric_text(best), "drop_pts": best["drop_pts"],
            "variants": int((g["runtime"] == "tvm").sum()),
        })
    return pd.DataFrame(out)
