"""Reports as CSV files in one ZIP: one file per report, the engine's answers as they are."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Sequence
from typing import Any

_UNSAFE = re.compile(r"[^a-z0-9_-]+")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A value as a CSV cell; text that a spreadsheet would run as a formula is quoted with '."""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def report_csv(columns: Sequence[str], result: dict[str, Any]) -> str:
    """One engine answer as CSV: dimension columns, then metric columns."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in result["results"]:
        writer.writerow([_cell(v) for v in [*row["dimensions"], *row["metrics"]]])
    return out.getvalue()


def csv_zip(reports: Sequence[tuple[str, Sequence[str], dict[str, Any]]]) -> bytes:
    """A ZIP holding ``NAME.csv`` for each (name, columns, answer)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, columns, result in reports:
            filename = _UNSAFE.sub("_", name.lower()).strip("_") + ".csv"
            archive.writestr(filename, report_csv(columns, result))
    return buffer.getvalue()
