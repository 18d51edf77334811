"""Report: results rows as measured (results.py), then what people read from them: tables with
ratios taken within one machine (tables.py), plots (plots.py), the markdown report
(document.py) and the comparison of two runs (compare.py)."""

from edgebench.report.results import (
    COLUMNS,
    KEY,
    OutputError,
    ResultsWriter,
    load_results,
    markdown,
    read_rows,
    row_key,
    write_markdown,
)

__all__ = ["COLUMNS", "KEY", "OutputError", "ResultsWriter", "load_results", "markdown",
           "read_rows", "row_key", "write_markdown"]
