"""Row sinks: JSON Lines (optionally gzipped) and Parquet with an explicit schema per format."""

from __future__ import annotations

import gzip
import json
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from storage.exports.options import suffix_of

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
TIMESTAMP = pa.timestamp("us", tz="UTC")
# The distinct data licences of the models whose answers are in a row (storage/exports/policy).
LICENSES = ("licenses", pa.list_(pa.string()))

SCHEMAS: dict[str, pa.Schema] = {
    # TRL conversational preference with an explicit prompt (+ OpenRLHF's `margin`).
    "dpo": pa.schema([
        ("prompt", MESSAGES), ("chosen", MESSAGES), ("rejected", MESSAGES),
        ("chosen_model", pa.string()), ("rejected_model", pa.string()),
        ("source", pa.string()), ("strength", pa.string()), ("margin", pa.float64()),
        ("language", pa.string()), ("conversation_id", pa.string()),
        ("created_at", TIMESTAMP), LICENSES,
    ]),
    # TRL unpaired preference.
    "kto": pa.schema([
        ("prompt", MESSAGES), ("completion", MESSAGES), ("label", pa.bool_()),
        ("model", pa.string()), ("source", pa.string()), ("language", pa.string()),
        ("conversation_id", pa.string()), ("created_at", TIMESTAMP), LICENSES,
    ]),
    # LMSYS Chatbot Arena battles (FastChat's rating code reads these columns).
    "arena": pa.schema([
        ("question_id", pa.string()), ("model_a", pa.string()), ("model_b", pa.string()),
        ("winner", pa.string()), ("judge", pa.string()),
        ("conversation_a", MESSAGES), ("conversation_b", MESSAGES),
        ("turn", pa.int32()), ("anony", pa.bool_()), ("language", pa.string()),
        ("tstamp", pa.float64()), LICENSES,
    ]),
    # TRL conversational language modelling.
    "sft": pa.schema([
        ("messages", MESSAGES), ("model", pa.string()), ("source", pa.string()),
        ("language", pa.string()), ("conversation_id", pa.string()),
        ("created_at", TIMESTAMP), LICENSES,
    ]),
}


class RowWriter(Protocol):
    def write(self, rows: list[dict[str, Any]]) -> None: ...

    def close(self) -> None: ...


class JsonlWriter:
    """One JSON object per line, UTF-8; times as ISO 8601 strings."""

    def __init__(self, path: Path, *, gzipped: bool) -> None:
        # The writer owns the file until close(); export() closes it on every path.
        if gzipped:
            self._file = gzip.open(path, "wt", encoding="utf-8", compresslevel=6)  # noqa: SIM115
        else:
            self._file = path.open("w", encoding="utf-8")
        self._encode = json.JSONEncoder(ensure_ascii=False, default=_json_default).encode

    def write(self, rows: list[dict[str, Any]]) -> None:
        encode = self._encode
        self._file.write("".join(encode(row) + "\n" for row in rows))

    def close(self) -> None:
        self._file.close()


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


_ROLE, _CONTENT = itemgetter("role"), itemgetter("content")


def _messages_column(values: list[list[dict[str, str]]]) -> pa.Array:
    """A `list<struct<role, content>>` column built from flat arrays: much faster than
    letting pyarrow convert a list of lists of dicts."""
    offsets = [0]
    roles: list[str] = []
    contents: list[str] = []
    add_roles, add_contents, add_offset = roles.extend, contents.extend, offsets.append
    for turns in values:
        add_roles(map(_ROLE, turns))
        add_contents(map(_CONTENT, turns))
        add_offset(len(roles))
    items = pa.StructArray.from_arrays(
        [pa.array(roles, pa.string()), pa.array(contents, pa.string())],
        names=["role", "content"],
    )
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), items, type=MESSAGES)


class ParquetRowWriter:
    """Each batch becomes a row group of one Parquet file (zstd).

    Encoding and compressing a row group releases the GIL, so it runs on a helper thread
    while the next batch is being built (one row group in flight at most).
    """

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._schema = schema
        self._writer = pq.ParquetWriter(path, schema, compression="zstd")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet")
        self._pending: Future[None] | None = None

    def write(self, rows: list[dict[str, Any]]) -> None:
        columns = []
        for field in self._schema:
            values = list(map(itemgetter(field.name), rows))
            if field.type == MESSAGES:
                columns.append(_messages_column(values))
            else:
                columns.append(pa.array(values, field.type))
        table = pa.Table.from_arrays(columns, schema=self._schema)
        self._wait()
        self._pending = self._pool.submit(self._writer.write_table, table)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()  # re-raises a failed write here

    def close(self) -> None:
        try:
            self._wait()
        finally:
            self._pool.shutdown()
            self._writer.close()


def open_writer(path: str | Path, format_: str) -> RowWriter:
    path = Path(path)
    kind = suffix_of(path)
    if kind == "parquet":
        return ParquetRowWriter(path, SCHEMAS[format_])
    return JsonlWriter(path, gzipped=kind == "jsonl.gz")
