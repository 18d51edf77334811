"""Report: results as CSV rows (written as measured), a markdown summary, an environment header.

Each row is appended and fsync'd the moment it is measured, so a crash loses nothing; a re-run
with the same output file skips rows already finished `ok`. The markdown table gives speedups
against the FP32 variant on the same runtime and against each peer, never across machines.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from edgebench.report.row import COLUMNS, DTYPES, KEY, ResultRow
from edgebench.runtimes import PEERS

if TYPE_CHECKING:  # pandas loads only where a file is read: the CLI checks `-o` without it
    import pandas as pd



class OutputError(ValueError):
    """The results path cannot be written."""


def check_writable(path: Path) -> None:
    """The results file can be created and appended to (OutputError naming it if not)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", newline=""):
            pass
    except OSError as e:
        raise OutputError(f"cannot write results to {path}: {e.strerror}") from None


class ResultsWriter:
    """Append-only CSV with a header; knows which rows a previous run already finished.

    Malformed lines (a row cut mid-line by a crash, or one appended onto such a row) are never
    counted as done: they are moved to a backup file beside the CSV, named in the log line, and
    the rest of the file is kept and resumed."""

    def __init__(self, path: str | Path, env: dict | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()  # a farm's board threads append concurrently
        check_writable(self.path)
        self._set_aside_bad_lines(log or print)
        self._check_header()
        if env is not None:
            self.env_path.write_text(json.dumps(env, indent=2))

    def _set_aside_bad_lines(self, log: Callable[[str], None]) -> None:
        text = _text(self.path)
        if not text:
            return
        good, bad = split_records(text)
        if not bad:
            return
        backup = self.path.with_name(
            f"{self.path.stem}.bad-{datetime.now(UTC):%Y%m%dT%H%M%S}{self.path.suffix}")
        tmp = self.path.with_suffix(".repair.tmp")
        for path, records in ((backup, bad), (tmp, good)):
            with open(path, "w", newline="") as fh:
                fh.write("".join(records))
        os.replace(tmp, self.path)
        log(f"{self.path}: {len(bad)} malformed line(s) set aside in {backup} (never counted "
            f"as done); resuming from the {max(len(good) - 1, 0)} good row(s)")

    @property
    def env_path(self) -> Path:
        return self.path.with_suffix(".env.json")

    def _check_header(self) -> None:
        if self.path.stat().st_size == 0:
            with open(self.path, "w", newline="") as fh:
                csv.writer(fh).writerow(COLUMNS)
            return
        with open(self.path, newline="") as fh:
            header = next(csv.reader(fh), [])
        if header == COLUMNS:
            return
        if not set(header) <= set(COLUMNS):
            raise OutputError(f"{self.path} has different columns (written by another version "
                              "of edgebench?); choose another output file")
        # An older edgebench wrote a subset of today's columns: upgrade the file in place so
        # its measured rows are kept and new rows append under one header.
        rows = _read_dicts(self.path)  # text kept as written
        tmp = self.path.with_suffix(".upgrade.tmp")
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)

    def finished(self, data: str | None = None) -> set[tuple[str, ...]]:
        """Keys of rows already measured ok (a re-run skips them); with `data` (a spec's
        data_id, "" for the model's own data) only the rows measured on that data."""
        return {r.key for r in read_rows(self.path)
                if r.status == "ok" and (data is None or (r.where.data or "") == data)}

    def append(self, row: ResultRow | Mapping[str, object]) -> None:
        """Write one row and fsync it. A mapping (column -> value: tests, tools) is read
        into a ResultRow first, so it is written exactly as the pipeline's rows are."""
        if not isinstance(row, ResultRow):
            unknown = set(row) - set(COLUMNS)
            if unknown:
                raise ValueError(f"unknown result columns: {sorted(unknown)}")
            row = ResultRow.from_columns(row)
        with self._lock, open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, COLUMNS).writerow(row.csv_fields())
            fh.flush()
            os.fsync(fh.fileno())


def _text(path: str | Path) -> str:
    with open(path, newline="") as fh:  # keep line ends as written: a cut line has none
        return fh.read()


def split_records(text: str) -> tuple[list[str], list[str]]:
    """A CSV's raw records split into (good, malformed). In a results file (a `status`
    column) a row is good with the header's field count, a known status and its line end; a
    row cut short, one running into the next, or a last line without its newline (cut
    mid-write) is malformed. Other CSVs: only the field count is checked."""
    lines = text.splitlines(keepends=True)
    good: list[str] = []
    bad: list[str] = []
    header: list[str] | None = None
    i = 0
    while i < len(lines):
        record = lines[i]
        i += 1
        while record.count('"') % 2 and i < len(lines):  # a quoted field spanning lines
            record += lines[i]
            i += 1
        fields = next(csv.reader([record]), [])
        if header is None:
            header = fields
            good.append(record)
            continue
        ok = len(fields) == len(header)
        if ok and "status" in header:
            ok = record.endswith("\n") and fields[header.index("status")] in ("ok", "failed")
        (good if ok else bad).append(record)
    return good, bad


def read_csv(path: str | Path) -> tuple[pd.DataFrame, int]:
    """A results CSV as a DataFrame of its well-formed rows, and how many lines were not.
    Columns are typed by ResultRow's fields: text columns stay text (a board or machine
    name that looks like a number is not one), measured figures are floats."""
    import pandas as pd

    good, bad = split_records(_text(path))
    if not good:
        raise pd.errors.EmptyDataError(f"{path} is empty")
    return pd.read_csv(io.StringIO("".join(good)), keep_default_na=False, na_values=[""],
                       dtype=DTYPES), len(bad)


def _read_dicts(path: str | Path) -> list[dict[str, str]]:
    good, _bad = split_records(_text(path))
    return list(csv.DictReader(io.StringIO("".join(good))))


def read_rows(path: str | Path) -> list[ResultRow]:
    """The well-formed rows of a results CSV as records (malformed lines are left out)."""
    return [ResultRow.from_columns(r) for r in _read_dicts(path)]


def row_key(row: Mapping[str, object]) -> tuple[str, ...]:
    return tuple(str(row.get(k, "")) for k in KEY)


def load_results(paths: Iterable[str | Path]) -> pd.DataFrame:
    """All rows of the given CSVs; for a key measured twice, the last row wins."""
    import pandas as pd

    frames = []
    for p in paths:
        df, bad = read_csv(p)
        if bad:
            print(f"edgebench: warning: {p}: {bad} malformed line(s) skipped", file=sys.stderr)
        frames.append(df)
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    return df.drop_duplicates(subset=[*KEY, "machine"], keep="last").reset_index(drop=True)


def _num(v: object, fmt: str = "{:.3f}") -> str:
    import pandas as pd

    return "" if v is None or pd.isna(v) else fmt.format(v)


def markdown(df: pd.DataFrame, env: dict | None = None, title: str = "edgebench results") -> str:
    """Markdown: environment header, then per machine and model a table of every row."""
    import pandas as pd

    from edgebench.report.tables import untuned

    lines = [f"# {title}", ""]
    if env:
        v = env.get("versions", {})
        lines += [
            f"- machine: {env.get('cpu')} ({env.get('arch')}, {env.get('logical_cpus')} logical "
            f"CPUs), ISA: {env.get('isa') or '-'}",
            "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
            f"- python {env.get('python')}, {env.get('os')}",
            "",
        ]
    ok = df[df["status"] == "ok"]
    for (machine, target, model), group in df.groupby(["machine", "target", "model"], sort=False):
        threads = ", ".join(sorted({str(t) for t in group["threads"]}))
        lines += [f"## {model} on {target} (machine {machine}, threads {threads})", ""]
        boards = sorted({str(b) for b in group.get("board", []) if pd.notna(b) and b != ""})
        if boards:
            emulated = group["emulated"].astype(str).str.lower().eq("true").any()
            lines += [f"Board(s): {', '.join(boards)}" + (
                ". **EMULATED** (qemu-user on an x86 host): these times are not a real "
                "board's; use them for correctness only." if emulated else "."), ""]
        peers = [r for r in PEERS if r in set(group["runtime"])]
        head = ["variant", "runtime", "status", "p50 ms", "p90 ms", "p99 ms", "runs",
                "speedup vs fp32", *[f"vs {p}" for p in peers], "accuracy / agreement",
                "max abs err", "size KiB (gzip)", "peak RSS MB", "trials/task"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        same = ok[(ok["machine"] == machine) & (ok["target"] == target) & (ok["model"] == model)]
        for _, r in group.iterrows():
            if r["status"] != "ok":
                err = str(r["error"]).replace("|", "/")
                lines.append(f"| {r['variant']} | {r['runtime']} | **{r['status']}**: {err} |"
                             + " |" * (len(head) - 3))
                continue
            base = same[(same["runtime"] == r["runtime"]) & (same["variant"] == "fp32")]
            vs_fp32 = _num(base["p50_ms"].iloc[0] / r["p50_ms"], "{:.2f}x") if len(base) else ""
            vs_peer = []
            for p in peers:
                pr = same[(same["runtime"] == p) & (same["variant"] == r["variant"])]
                if not len(pr):
                    pr = same[(same["runtime"] == p) & (same["variant"] == "fp32")]
                vs_peer.append(_num(pr["p50_ms"].iloc[0] / r["p50_ms"], "{:.2f}x")
                               if len(pr) and p != r["runtime"] else "")
            quality = (_num(r["accuracy"], "{:.4f}") if pd.notna(r.get("accuracy"))
                       else _num(r.get("top1_agreement"), "{:.4f}"))
            if pd.notna(r.get("metric_value")) and r.get("metric") not in ("top1", "agreement"):
                quality = f"{r['metric']} {_num(r['metric_value'], '{:.4g}')}"
            if str(r.get("evaluation", "")).startswith("fidelity"):
                quality += f" ({r['evaluation']})"
            size = (f"{r['artifact_bytes'] / 1024:.0f} ({r['artifact_gzip_bytes'] / 1024:.0f})"
                    if pd.notna(r["artifact_bytes"]) else "")
            trials = ("untuned" if untuned(r) else "0 (our kernels)" if r["runtime"] == "tvm"
                      and r["tuned_trials"] == 0 else _num(r.get("tuned_trials"), "{:.0f}"))
            lines.append("| " + " | ".join([
                str(r["variant"]), str(r["runtime"]), "ok", _num(r["p50_ms"]), _num(r["p90_ms"]),
                _num(r["p99_ms"]), _num(r["runs"], "{:.0f}"), vs_fp32, *vs_peer, quality,
                _num(r["max_abs_err"], "{:.2g}"), size, _num(r["peak_rss_mb"], "{:.0f}"),
                trials]) + " |")
        lines.append("")
    lines += [
        "Speedups are p50 ratios within one machine and target (>1 means this row is faster).",
        "Peak RSS is the measuring worker process's peak resident set (Python interpreter + "
        "runtime library + model + buffers; one runtime per process).", "",
    ]
    return "\n".join(lines)


def write_markdown(csv_path: str | Path, out: str | Path | None = None) -> Path:
    csv_path = Path(csv_path)
    env_path = csv_path.with_suffix(".env.json")
    env = json.loads(env_path.read_text()) if env_path.exists() else None
    out = Path(out) if out else csv_path.with_suffix(".md")
    out.write_text(markdown(load_results([csv_path]), env))
    return out
