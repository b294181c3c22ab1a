"""Load event files (CSV or Parquet, in the project's schema) into PostgreSQL ``raw`` tables.

- Loads are idempotent by content: a file whose SHA-256 was loaded before adds nothing.
- Nothing is lost: every data row of the file becomes one row of ``raw.events``, kept as text
  exactly as given. Rows the CSV parser cannot split into the header's columns are kept too,
  with ``parse_error`` saying why, and so are rows with a field PostgreSQL cannot store as text
  (a NUL byte, bytes that are not UTF-8): the field is kept with those bytes escaped (``\\x00``,
  ``\\xe9``) and ``parse_error`` names it. dbt staging decides what is valid and rejects the rest
  with a reason, so ``raw rows = staged + duplicates + rejected`` for every load.
- A file that is not events at all (not CSV or Parquet, a truncated Parquet, an empty file, a header
  without a required column) is refused whole with one sentence (``EventSchemaError``), before any
  file of the same call is stored. CSV may start with a byte-order mark and end lines with CRLF.
- Rows go in with COPY, in one transaction per file together with its ``raw.loads`` record.

CLI: ``python -m interest_decay.events.ingest PATH [PATH ...]`` (files or folders of .csv/.parquet)
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from interest_decay.events.schema import EVENT_COLUMNS, EventSchemaError, check_columns

# raw.events.load_id has no foreign key to raw.loads: load_table writes a load's row and its events in one
# transaction, and the dbt source test `relationships` checks it. A foreign key checked every row with a
# trigger of its own (a query on raw.loads per event). Databases created before keep theirs until
# `alter table raw.events drop constraint events_load_id_fkey`.
RAW_DDL = """
create schema if not exists raw;
create table if not exists raw.loads (
    load_id bigserial primary key,
    file_sha256 text not null unique,
    source text not null,
    row_count bigint not null,
    loaded_at timestamptz not null default now()
);
create table if not exists raw.events (
    load_id bigint not null,
    row_number bigint not null,
    user_id text,
    item_id text,
    category_id text,
    event_type text,
    ts text,
    value text,
    parse_error text,
    raw_line text,
    primary key (load_id, row_number)
);
-- A row the CSV parser could not split, as given (its parse_error says why without quoting it: staging and
-- rejected_events show the reason, and a raw line holds a raw user id, which stays in this schema). Added to
-- tables made before only when missing: an alter locks the table even when there is nothing to do.
do $$
begin
    if not exists (
        select from information_schema.columns
        where table_schema = 'raw' and table_name = 'events' and column_name = 'raw_line'
    ) then
        alter table raw.events add column raw_line text;
    end if;
end
$$;
-- The events live batches folded into the online store that staging has not seen yet, one key each
-- (interest_decay.online.realtime.new_events): each event counts once online, as staging counts it.
create table if not exists raw.live_event_keys (
    event_key text primary key,
    load_id bigint not null
);
"""
SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class BadRow:
    """A row the CSV parser could not split into the header's columns: why (no field of it quoted) and the
    row as given (stored in ``raw.events.raw_line``, so nothing is lost)."""

    reason: str
    text: str

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class LoadResult:
    source: str
    load_id: int
    rows: int
    parse_errors: int  # rows kept with a parse_error (unsplittable, or a field that cannot be stored)
    skipped: bool  # True when this exact file had been loaded before


# Loads commit in the order of their load_id. Staging and the interest mart take the loads above a
# watermark (the latest load they have seen), so a load still being written while one with a higher
# load_id is staged would be skipped for good. A loader holds this lock, shared (loaders run side by side),
# from before its load_id is drawn until it commits; the staging run takes it exclusively while it reads
# the raw loads (pre-hook of dbt_project/models/staging/stg_behaviour__events_checked.sql, same key), so
# it waits for the loads in flight and the loads after it wait for its commit.
LOAD_ORDER_LOCK = "interest_decay.raw_loads"


def hold_load_order_lock(cur, timeout_s: float | None = None) -> None:
    """Take the load-order lock (shared) until the current transaction ends. With ``timeout_s``, wait at
    most that long (psycopg.errors.LockNotAvailable after it): a staging run holds the lock exclusively
    while it reads the raw loads, and one waiting for a long batch load holds back every new load."""
    if timeout_s is not None:
        cur.execute(f"set local lock_timeout = {int(timeout_s * 1000)}")
    cur.execute("select pg_advisory_xact_lock_shared(hashtext(%s))", (LOAD_ORDER_LOCK,))
    if timeout_s is not None:
        cur.execute("set local lock_timeout = 0")


def ensure_raw_schema(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext('interest_decay.raw_ddl'))")
        cur.execute(RAW_DDL)


def event_files(paths: list[Path]) -> list[Path]:
    """Expand folders to their .csv/.parquet files (sorted); refuse what is not there."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in SUFFIXES))
        elif path.is_file():
            if path.suffix not in SUFFIXES:
                raise EventSchemaError(f"{path}: not a .csv or .parquet file")
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return files


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Text form of a Parquet column (binary stays bytes: ``storable`` checks it); naive timestamps are UTC."""
    if pa.types.is_timestamp(column.type):
        if column.type.tz is None:
            column = pc.assume_timezone(column, "UTC")
        column = column.cast(pa.timestamp("us", "UTC"), safe=False)  # the rules take up to 6 fraction digits
        return pc.strftime(column, format="%Y-%m-%dT%H:%M:%S%z")
    if pa.types.is_floating(column.type):
        column = pc.if_else(pc.is_nan(column), None, column)
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        return column.cast(pa.binary())
    return column.cast(pa.string())


# Fields PostgreSQL cannot store as text: the row is kept, the field escaped, the reason in parse_error.
def unstorable_reason(name: str, value: str | bytes | None) -> str | None:
    """Why field ``name`` cannot be stored as PostgreSQL text (None: it can): bytes that are not UTF-8 (a lone
    surrogate in a str counts), or a NUL byte. The same words as ``storable`` writes in ``parse_error``."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogatepass")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return f"{name} is not valid UTF-8 (bytes shown as \\xNN)"
    if "\x00" in text:
        return f"{name} contains a NUL byte (shown as \\x00)"
    return None


def escaped(value: bytes) -> str:
    """``value`` as storable text: bytes that are not UTF-8 as ``\\xNN``, NUL as ``\\x00``."""
    return value.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def _text_column(name: str, column: pa.ChunkedArray, problems: dict[int, list[str]]) -> pa.ChunkedArray:
    """``column`` (string or binary) as storable text; the rows it had to escape get a reason in ``problems``."""
    chunks, offset = [], 0
    for chunk in column.chunks:
        try:
            text = chunk.cast(pa.string())  # validates UTF-8 (vectorised); the row loop runs only where it fails
            nul = pc.fill_null(pc.match_substring(text, "\x00"), False).to_numpy(zero_copy_only=False)
            rows = np.flatnonzero(nul)
        except pa.ArrowInvalid:
            text, rows = None, range(len(chunk))
        if len(rows):
            values = chunk.to_pylist()
            fixed = list(values) if text is None else text.to_pylist()
            for row in rows:
                raw = values[row]
                raw = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
                reason = unstorable_reason(name, raw)
                if reason:
                    problems.setdefault(offset + int(row), []).append(reason)
                    fixed[row] = escaped(raw)
                elif raw is not None:
                    fixed[row] = raw.decode("utf-8")
            text = pa.array(fixed, pa.string())
        chunks.append(text)
        offset += len(chunk)
    return pa.chunked_array(chunks, pa.string())


def storable(table: pa.Table) -> pa.Table:
    """The contract columns as text PostgreSQL can store, plus ``parse_error``: a row with a field that could
    not be stored as given keeps it escaped (``escaped``) and says which field and why (``unstorable_reason``);
    a ``parse_error`` the table already has is kept."""
    problems: dict[int, list[str]] = {}
    columns = {name: _text_column(name, table[name], problems) for name in EVENT_COLUMNS}
    given = table["parse_error"] if "parse_error" in table.column_names else pa.nulls(table.num_rows, pa.string())
    if problems:
        errors = given.to_pylist()
        for row, reasons in problems.items():
            errors[row] = "; ".join(([errors[row]] if errors[row] else []) + reasons)
        given = pa.array(errors, pa.string())
    return pa.table({**columns, "parse_error": given})


def _csv_header(path: Path) -> list[str]:
    """The header row's column names (a UTF-8 byte-order mark and CRLF allowed); an empty file is refused."""
    with path.open("rb") as fh:
        first = fh.readline(1 << 16)
    if not first.strip():
        raise EventSchemaError(f"{path}: the file is empty (no header row); expected {', '.join(EVENT_COLUMNS)}")
    line = first.decode("utf-8-sig", "backslashreplace").rstrip("\r\n")
    return [name.strip() for name in next(csv.reader([line]), [])]


def check_file(path: Path) -> None:
    """Refuse a file that is not events at all with one sentence (``EventSchemaError``), reading only its
    header (CSV) or footer (Parquet): what ``ingest`` checks for every file before it stores any."""
    if path.suffix == ".parquet":
        try:
            names = pq.read_schema(path).names
        except (pa.ArrowInvalid, OSError) as error:
            raise EventSchemaError(f"{path}: not a readable Parquet file ({error})") from None
    else:
        names = _csv_header(path)
    check_columns(names, str(path))


@contextlib.contextmanager
def _quiet_unraisable():
    """Silence exceptions Python can only print (``sys.unraisablehook``) inside the block."""
    hook, sys.unraisablehook = sys.unraisablehook, lambda _: None
    try:
        yield
    finally:
        sys.unraisablehook = hook


def _read_csv_slowly(path: Path) -> tuple[dict[str, pa.Array], list[BadRow]]:
    """``read_events``'s CSV columns with Python's csv module, for files Arrow's parser gives up on: the bytes
    kept as given (undecodable ones round-trip through surrogate escapes), rows of the wrong width as bad rows."""
    with path.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        reader = csv.reader(fh)
        header = [name.strip() for name in next(reader, [])]
        wanted = [header.index(c) for c in EVENT_COLUMNS if c in header]
        values: list[list[bytes]] = [[] for _ in wanted]
        bad_rows: list[BadRow] = []
        for row in reader:
            if len(row) != len(header):
                text = escaped(",".join(row).encode("utf-8", "surrogateescape"))
                bad_rows.append(BadRow(f"line {reader.line_num}: expected {len(header)} fields, got {len(row)}", text))
                continue
            for out, index in zip(values, wanted):
                out.append(row[index].encode("utf-8", "surrogateescape"))
    names = [header[index] for index in wanted]
    return {name: pa.array(column, pa.binary()) for name, column in zip(names, values)}, bad_rows


def read_events(path: Path) -> tuple[pa.Table, list[BadRow]]:
    """The file's contract columns as text or bytes as given (absent optional ``value`` -> nulls; ``storable``
    makes them text PostgreSQL takes), and the rows the CSV parser could not split into the header's columns."""
    check_file(path)
    bad_rows: list[BadRow] = []
    try:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            columns = {c: _as_text(table[c]) for c in EVENT_COLUMNS if c in table.column_names}
        else:
            header = _csv_header(path)

            def keep_bad_row(row) -> str:
                where = f"line {row.number}" if row.number and row.number > 0 else f"bad row {len(bad_rows) + 1}"
                reason = f"{where}: expected {row.expected_columns} fields, got {row.actual_columns}"
                bad_rows.append(BadRow(reason, row.text))
                return "skip"

            with _quiet_unraisable():  # Arrow reports a ragged row that is not UTF-8 on stderr, then fails
                table = pacsv.read_csv(
                    path,
                    # the names from _csv_header (BOM and spaces gone); bytes as read: storable checks UTF-8 and NUL
                    read_options=pacsv.ReadOptions(column_names=header, skip_rows=1),
                    parse_options=pacsv.ParseOptions(invalid_row_handler=keep_bad_row),
                    convert_options=pacsv.ConvertOptions(
                        column_types={c: pa.binary() for c in header},
                        include_columns=[c for c in EVENT_COLUMNS if c in header],
                        strings_can_be_null=False,
                    ),
                )
            columns = {c: table[c] for c in table.column_names}
    except pa.ArrowInvalid:
        if path.suffix == ".parquet":
            raise EventSchemaError(f"{path}: not a readable Parquet file") from None
        columns, bad_rows = _read_csv_slowly(path)  # e.g. a ragged row that is not UTF-8
    except OSError as error:
        raise EventSchemaError(f"{path}: cannot be read ({error})") from None
    n = len(columns["user_id"])
    columns.setdefault("value", pa.chunked_array([pa.nulls(n, pa.string())]))
    return pa.table({c: columns[c] for c in EVENT_COLUMNS}), bad_rows


def load_file(conn, path: Path) -> LoadResult:
    """Load one file in one transaction; a file already loaded (same SHA-256) is skipped."""
    path = Path(path)
    return load_table(conn, lambda: read_events(path), source=path.name, sha=file_sha256(path))


def load_table(
    conn, read: Callable[[], tuple[pa.Table, list[str]]], source: str, sha: str, lock_timeout_s: float | None = None
) -> LoadResult:
    """Store one batch of events (``read()``: the contract columns as text or bytes, plus unsplittable rows;
    fields that cannot be stored are escaped and their rows get a ``parse_error``, see ``storable``) as one
    load, unless a load with the same content hash ``sha`` exists (then nothing is read or added).
    ``lock_timeout_s``: see hold_load_order_lock (the service sets it; batch ingest waits)."""
    with conn.transaction(), conn.cursor() as cur:
        hold_load_order_lock(cur, lock_timeout_s)
        cur.execute("select load_id, row_count from raw.loads where file_sha256 = %s", (sha,))
        seen = cur.fetchone()
        if seen:
            return LoadResult(source, seen[0], seen[1], 0, skipped=True)
        table, bad_rows = read()
        table = storable(table)
        cur.execute(
            "insert into raw.loads (file_sha256, source, row_count) values (%s, %s, %s) returning load_id",
            (sha, source, table.num_rows + len(bad_rows)),
        )
        load_id = cur.fetchone()[0]
        if bad_rows:
            bad = pa.table({c: pa.nulls(len(bad_rows), pa.string()) for c in EVENT_COLUMNS})
            bad = bad.append_column("parse_error", pa.array([row.reason for row in bad_rows], pa.string()))
            lines = [escaped(row.text.encode("utf-8", "surrogatepass")) for row in bad_rows]
            table = table.append_column("raw_line", pa.nulls(table.num_rows, pa.string()))
            table = pa.concat_tables([table, bad.append_column("raw_line", pa.array(lines, pa.string()))])
        table = table.add_column(0, "row_number", pa.array(range(1, table.num_rows + 1), pa.int64()))
        table = table.add_column(0, "load_id", pa.array([load_id] * table.num_rows, pa.int64()))
        buffer = io.BytesIO()
        pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
        columns = ", ".join(table.column_names)
        with cur.copy(f"copy raw.events ({columns}) from stdin (format csv)") as copy:
            view = buffer.getbuffer()
            for start in range(0, len(view), 1 << 20):
                copy.write(view[start : start + (1 << 20)])
        errors = table.num_rows - table["parse_error"].null_count
        return LoadResult(source, load_id, table.num_rows, errors, skipped=False)


def ingest(paths: list[Path], conninfo: str | None = None) -> list[LoadResult]:
    """Load every event file under ``paths`` into ``raw``; returns one result per file."""
    import psycopg

    from interest_decay.config import pg_conninfo

    files = event_files([Path(p) for p in paths])
    for path in files:  # a file that is not events stops the call before any file is stored
        check_file(path)
    with psycopg.connect(conninfo or pg_conninfo(), autocommit=True) as conn:
        ensure_raw_schema(conn)
        return [load_file(conn, f) for f in files]


def ingest_run(events_path: str, dataset: str, converted_dir: Path) -> list[dict]:
    """The pipeline's ingest step: the files under ``events_path`` into ``raw``; a real dataset in its own
    format (``dataset`` online-retail or taobao; ``events`` for the project's schema) is converted into
    ``converted_dir`` first. Raises ValueError when there is nothing to load."""
    if not events_path:
        raise ValueError("no events_path given and EVENTS_DIR is not set: nothing to ingest")
    paths = [Path(events_path)]
    if dataset != "events":
        from interest_decay.events.adapters import convert_dataset

        paths = convert_dataset(paths, dataset, converted_dir / dataset)
    results = ingest(paths)
    if not results:
        raise ValueError(f"{events_path}: no .csv or .parquet event files found")
    return [vars(r) for r in results]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m interest_decay.events.ingest",
        description="Load event files (CSV or Parquet in the project's event schema) into PostgreSQL "
        "raw tables, idempotently. Connection from PGHOST/PGPORT/PGUSER/PGDATABASE.",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="event files, or folders of .csv/.parquet files")
    args = parser.parse_args(argv)
    import psycopg

    try:
        results = ingest(args.paths)
    except (EventSchemaError, OSError) as error:  # OSError: missing or unreadable file
        parser.exit(2, f"error: {error}\n")
    except psycopg.OperationalError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        parser.exit(1, f"error: cannot store the events, PostgreSQL is not reachable ({first}); `make postgres`\n")
    for r in results:
        state = "already loaded, skipped" if r.skipped else f"{r.rows:,} rows ({r.parse_errors} unparseable)"
        print(f"{r.source}: load {r.load_id}: {state}")


if __name__ == "__main__":
    main()
