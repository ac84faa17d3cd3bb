"""A run's tasks as a Parquet file for pandas (and anything that reads Arrow): one row per task, the
columns of oomlab.record.stream.TaskLine, typed (floats, 64-bit integers with nulls, booleans), args and
memory kinds as JSON text. Written batch by batch from RunTasks, so a million-task stream never sits
in memory; pyarrow is the optional extra `oomlab[parquet]`. bench/tasks_read.py measures what it buys
over pandas reading tasks.jsonl."""

from __future__ import annotations

import json
import typing
from collections.abc import Iterable
from dataclasses import fields, is_dataclass
from typing import Any, Literal, get_args, get_origin

from oomlab.errors import BadInput
from oomlab.record.stream import TaskLine
from oomlab.record.typed_json import to_json
from oomlab.trust import replaced_atomically, results_umask

BATCH_ROWS = 32_768  # rows held at a time (a row group each)
JSON_COLUMNS = ("args", "memory_kinds")  # free-form values: JSON text in a string column


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise BadInput("exporting to Parquet needs pyarrow: pip install 'oomlab[parquet]'") from None
    return pyarrow


def arrow_schema(pa: Any) -> Any:
    """TaskLine's fields as Arrow types, from its type hints: one place for the columns."""
    hints = typing.get_type_hints(TaskLine)
    columns = []
    for item in fields(TaskLine):
        hint = hints[item.name]
        nullable = type(None) in get_args(hint)
        base = next((a for a in get_args(hint) if a is not type(None)), hint) if nullable else hint
        if item.name in JSON_COLUMNS or get_origin(base) is Literal or base is str:
            kind = pa.string()
        elif base is bool:
            kind = pa.bool_()
        elif base is int:
            kind = pa.int64()
        elif base is float:
            kind = pa.float64()
        else:
            raise TypeError(f"TaskLine.{item.name}: no Arrow type for {hint!r}")
        columns.append(pa.field(item.name, kind, nullable=nullable or kind == pa.string()))
    return pa.schema(columns)


def _value(name: str, task: TaskLine) -> Any:
    value = getattr(task, name)
    if name not in JSON_COLUMNS:
        return value
    return json.dumps(to_json(value) if is_dataclass(value) else value, default=repr)


def write_parquet(tasks: Iterable[TaskLine], path: str) -> int:
    """Every task into `path` (written to a new temporary file beside it, handed to pyarrow as a file
    object, then renamed: a reader never meets half a file, and nothing planted beside it is written
    through); the number of rows written. The caller has checked `path`'s directory (output_dir)."""
    pa = _pyarrow()
    schema = arrow_schema(pa)
    names = schema.names
    rows = 0
    with (
        replaced_atomically(path, 0o666 & ~results_umask()) as handle,
        pa.parquet.ParquetWriter(handle, schema, compression="zstd") as writer,
    ):
        batch: list[TaskLine] = []
        for task in tasks:
            batch.append(task)
            if len(batch) == BATCH_ROWS:
                writer.write_batch(_batch(pa, schema, names, batch))
                rows += len(batch)
                batch = []
        if batch or not rows:
            writer.write_batch(_batch(pa, schema, names, batch))
            rows += len(batch)
    return rows


def _batch(pa: Any, schema: Any, names: list[str], tasks: list[TaskLine]) -> Any:
    return pa.RecordBatch.from_arrays(
        [pa.array([_value(name, task) for task in tasks], type=schema.field(name).type) for name in names],
        schema=schema,
    )
