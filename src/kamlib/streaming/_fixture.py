"""The Python Data Source behind :func:`kamlib.streaming.fixture_source` (imported lazily)."""

from __future__ import annotations

import base64
import datetime as _dt
import json
from collections.abc import Iterator, Sequence
from typing import Any

from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxRows,
    SupportsTriggerAvailableNow,
)
from pyspark.sql.types import StructType

__all__ = ["FixtureDataSource"]

_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset bigint, timestamp timestamp"
)
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


class _Range(InputPartition):
    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end


class FixtureStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Offsets are ``{"index": i}``: the number of records replayed so far."""

    def __init__(self, options: dict[str, str]) -> None:
        options = {str(k).lower(): v for k, v in options.items()}  # option names: any case
        self._rows: list[list[Any]] = json.loads(options.get("records", "[]"))
        per_batch = options.get("maxrecordsperbatch")
        self._per_batch = int(per_batch) if per_batch else None
        self._target = len(self._rows)

    def initialOffset(self) -> dict[str, int]:  # noqa: N802
        return {"index": 0}

    def getDefaultReadLimit(self) -> ReadLimit:  # noqa: N802
        return ReadMaxRows(self._per_batch) if self._per_batch else ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:  # noqa: N802
        self._target = len(self._rows)

    def latestOffset(self, start: dict[str, int], limit: ReadLimit) -> dict[str, int]:  # noqa: N802
        begin = int(start["index"])
        end = self._target
        if isinstance(limit, ReadMaxRows):
            end = min(end, begin + int(limit.max_rows))
        # The cap is a property of the fixture (it simulates a source that delivers at most
        # this many records per batch), so it also applies under ReadAllAvailable, which
        # Spark passes for available_now triggers.
        if self._per_batch:
            end = min(end, begin + self._per_batch)
        return {"index": max(begin, end)}

    def partitions(self, start: dict[str, int], end: dict[str, int]) -> Sequence[InputPartition]:
        return [_Range(int(start["index"]), int(end["index"]))]

    def read(self, partition: InputPartition) -> Iterator[tuple[Any, ...]]:
        assert isinstance(partition, _Range)
        for key, value, topic, part, offset, micros in self._rows[partition.start : partition.end]:
            yield (
                None if key is None else base64.b64decode(key),
                None if value is None else base64.b64decode(value),
                topic,
                int(part),
                int(offset),
                _EPOCH + _dt.timedelta(microseconds=int(micros)),
            )

    def commit(self, end: dict[str, int]) -> None:
        return None


class FixtureDataSource(DataSource):
    """Replays the records given in option ``records`` (JSON) in the Kafka record shape."""

    @classmethod
    def name(cls) -> str:
        return "kamlib_fixture"

    def schema(self) -> str:
        return _SCHEMA

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:  # noqa: N802
        return FixtureStreamReader(dict(self.options))
