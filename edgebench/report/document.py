"""The report people read: environment header, headline table, plots and tables per group,
failed rows with their errors (never plotted).

Written as one markdown file plus PNGs under `plots/` beside it, so it renders on GitHub and in
any editor; the command that regenerates it is written at the top.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from edgebench.report import plots
from edgebench.report.tables import (
    GROUP,
    MAX_LOSS_PTS,
    PEERS,
    Results,
    group_label,
    group_slug,
    headline,
    load,
)


def _cell(v: object, fmt: str = "{:.3g}") -> str:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return ""
    return fmt.format(v) if not isinstance(v, str) else v.replace("|", "/").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
            *("| " + " | ".join(r) + " |" for r in rows)]


def _ratio(v: object) -> str:
    return _cell(v, "{:.2f}x")


def _pts(v: object) -> str:
    return _cell(v * 100 if v is not None and not pd.isna(v) else v, "{:+.1f}")


def environment_section(res: Results) -> list[str]:
    """One line per source file: where and with what it was measured."""
    rows = []
    for source, g in res.rows.groupby("source", sort=False):
        env = res.envs.get(source, {})
        v = env.get("versions", {})
        versions = ", ".join(f"{k} {v[k]}" for k in ("torch", "apache-tvm", "onnxruntime",
                                                       "executorch") if v.get(k, "-") != "-")
        targets = ", ".join(sorted(g["target"].astype(str).unique()))
        boards = ", ".join(sorted(b for b in g["board_kind"].unique() if b)) or "-"
        threads = ", ".join(map(str, sorted(g["threads"].unique())))
        rows.append([f"`{source}`", str(g["machine"].iloc[0]),
                     _cell(env.get("cpu", "?")), _cell(env.get("isa") or "-"),
                     str(env.get("logical_cpus", "?")), threads, targets, boards,
                     "**yes**" if g["emulated"].any() else "no", versions or "?"])
    return ["## Environments", "", *md_table(
        ["results file", "machine", "CPU", "ISA", "logical CPUs", "threads", "target", "board",
         "emulated", "versions"], rows), "",
            "Ratios are only taken between rows of one machine, target, thread count and "
            "board kind; emulated (qemu) rows are kept apart and their times are not a real "
            "board's.", ""]


def headline_section(df: pd.DataFrame) -> list[str]:
    h = headline(df)
    if h.empty:
        return []
    rows = [[r["group"], r["model"], r["technique"], f"`{r['variant']}`", _cell(r["p50_ms"]),
             _ratio(r["speedup_vs_fp32"]), _ratio(r["vs_best_peer"]), _ratio(r["gzip_vs_fp32"]),
             f"{_cell(r['quality'], '{:.4f}')} ({_pts(r['quality_delta'])} pt)"
             + ("" if r["quality_kind"] == "accuracy" else
                " agreement" + (f", {r['quality_kind']}" if r["quality_kind"].startswith(
                    "fidelity") else "")),
             f"{r['rule']} of {r['candidates']}"] for _, r in h.iterrows()]
    return ["## Headline: what pruning and quantization buy (edgebench's TVM build)", "",
            *md_table(["where", "model", "technique", "best variant", "p50 ms",
                       "speedup vs FP32", "vs fastest peer", "gzip size vs FP32",
                       "accuracy (change)", "chosen as"], rows), "",
            f"Best variant = fastest that loses at most {MAX_LOSS_PTS:g} accuracy point against "
            "FP32 on the same runtime; models scored only by top-1 agreement with FP32 "
            "(random-weight ImageNet models: agreement is not accuracy) show their fastest "
            "variant. *vs fastest peer* divides the fastest of PyTorch / ONNX Runtime / "
            "ExecuTorch on the same variant (else its FP32) by edgebench: > 1 means edgebench "
            "is faster. `quant ... (simulated)` runs the fake-quant graph in float: no int8 "
            "kernel, no int8 speed claimed.", ""]


def _rows_table(g: pd.DataFrame) -> list[str]:
    rows = []
    for _, r in g.sort_values(["model", "variant", "runtime"]).iterrows():
        rows.append([r["model"], f"`{r['variant']}`", r["runtime"], _cell(r["p50_ms"]),
                     _ratio(r["speedup_vs_fp32"]),
                     *(_ratio(r[f"vs_{p}"]) for p in PEERS),
                     _cell(r["quality"], "{:.4f}"), _cell(r["weights_removed"], "{:.2f}"),
                     _cell(r["artifact_gzip_bytes"] / 1024, "{:.0f}")])
    return md_table(["model", "variant", "runtime", "p50 ms", "vs own FP32",
                     *(f"{p} / this" for p in PEERS), "accuracy or agreement",
                     "weights removed", "gzip KiB"], rows)


def group_sections(res: Results, out_dir: Path) -> list[str]:
    lines = []
    ok = res.ok
    for key, g in ok.groupby(GROUP, sort=True):
        label, slug = group_label(key), group_slug(key)
        lines += [f"## {label}", ""]
        if key[3]:
            lines += ["**EMULATED** (qemu-user on an x86 host): use these times for "
                      "correctness and relative trends only.", ""]
        for name, fn in (("accuracy vs latency", plots.accuracy_latency),
                         ("speedup vs sparsity", plots.speedup_sparsity),
                         ("edgebench vs peers", plots.runtimes),
                         ("size per variant", plots.sizes)):
            plot = fn(g, out_dir / "plots" / f"{slug}-{name.replace(' ', '-')}.png", label)
            if plot is not None:
                lines += [f"![{name}]({plot.path.relative_to(out_dir).as_posix()})", ""]
        lines += [f"<details><summary>all {len(g)} rows</summary>", "", *_rows_table(g), "",
                  "</details>", ""]
    return lines


def failed_section(res: Results) -> list[str]:
    lines = ["## Failed rows", ""]
    if res.failed.empty:
        return [*lines, "None.", ""]
    rows = [[f"`{r['source']}`", r["model"], f"`{r['variant']}`", r["runtime"], r["target"],
             "**failed**", _cell(r["error"])] for _, r in res.failed.iterrows()]
    return [*lines, *md_table(["results file", "model", "variant", "runtime", "target",
                               "status", "error"], rows), ""]


def write_report(paths: Sequence[str | Path], out_dir: str | Path,
                 command: str | None = None, name: str = "README.md") -> Path:
    """Write `out_dir/README.md` and `out_dir/plots/*.png` from results CSVs; return the md."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in (out_dir / "plots").glob("*.png"):  # a plot no group makes any more must go
        old.unlink()
    res = load(list(paths))
    command = command or "edgebench report " + " ".join(shlex.quote(str(p)) for p in paths) \
        + f" --out {shlex.quote(str(out_dir))}"
    lines = ["# edgebench report", "", "Regenerate (from the repository root):", "",
             "```bash", command, "```", "",
             f"{len(res.rows)} rows ({len(res.ok)} ok, {len(res.failed)} failed) from "
             f"{res.rows['source'].nunique()} results file(s).", ""]
    lines += environment_section(res) + headline_section(res.rows)
    lines += group_sections(res, out_dir) + failed_section(res)
    if res.skipped:
        lines += ["## Files skipped", "", *(f"- `{p}`: {why}" for p, why in res.skipped), ""]
    out = out_dir / name
    out.write_text("\n".join(lines))
    return out
