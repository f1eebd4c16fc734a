"""Reading a CSV a person sent (a spreadsheet's export): its header and its non-blank
records with their line numbers. A file the csv module cannot read is the caller's
``invalid`` error (a 400), never a server error."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from pawdex.core.errors import PawdexError


def csv_header(text: str, invalid: type[PawdexError]) -> tuple[csv.DictReader, list[str]]:
    """A reader of ``text`` (a spreadsheet's BOM dropped, any newline) and its header."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        return reader, [(name or "").strip() for name in reader.fieldnames or []]
    except csv.Error as exc:
        raise invalid(f"not a CSV ({exc})") from None


def csv_records(
    reader: csv.DictReader, invalid: type[PawdexError], max_rows: int | None
) -> Iterator[tuple[int, dict[str, str]]]:
    """Each record's line and its cells by stripped header, blank lines left out;
    ``invalid`` past ``max_rows`` records or where the file stops being a CSV."""
    seen = 0
    try:
        for record in reader:
            cells = {k.strip(): (v or "").strip() for k, v in record.items() if k}
            if not any(cells.values()):
                continue  # a blank line a spreadsheet left
            seen += 1
            if max_rows is not None and seen > max_rows:
                raise invalid(f"at most {max_rows} rows per import")
            yield reader.line_num, cells
    except csv.Error as exc:
        raise invalid(f"not a CSV after line {reader.line_num} ({exc})") from None
