"""PostgreSQL binary COPY rows, encoded directly from the pipeline's tuples.

Times stay integers (microseconds) all the way: binary timestamptz is the
offset from 2000-01-01 in microseconds, so no datetime object is ever built.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from itertools import chain, repeat

from .pipeline import EventRow, ReadingCols, ReadingRow

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
PG_EPOCH_US = 946_684_800_000_000

_TIME = struct.Struct(">hiq")  # field count, length 8, timestamptz
_VALUE_QUALITY = struct.Struct(">idih")  # float8, then int2
_QUALITY = struct.Struct(">ih")
_LEN = struct.Struct(">i")


class _Texts(dict[str, bytes]):
    """Length-prefixed UTF-8 of each string, encoded once (ids repeat endlessly)."""

    def __missing__(self, key: str) -> bytes:
        raw = key.encode()
        value = _LEN.pack(len(raw)) + raw
        if len(self) < 200_000:
            self[key] = value
        return value


_texts = _Texts()
text_field = _texts.__getitem__


def readings_copy(rows: Iterable[ReadingRow]) -> bytes:
    """Binary COPY data for columns (time, device_id, metric, value, quality, tenant_id)."""
    texts = _texts
    pack_time = _TIME.pack
    pack_vq = _VALUE_QUALITY.pack
    parts = [HEADER]
    append = parts.append
    for time_us, device, metric, value, quality, tenant in rows:
        append(pack_time(6, 8, time_us - PG_EPOCH_US))
        append(texts[device])
        append(texts[metric])
        append(pack_vq(8, value, 2, quality))
        append(texts[tenant])
    append(TRAILER)
    return b"".join(parts)


def readings_copy_columns(cols: ReadingCols, start: int, stop: int) -> bytes:
    """Rows [start, stop) like :func:`readings_copy` (header with the first, trailer with the last),
    from columns, with the loop in C (map/zip/join)."""
    part = slice(start, stop)
    times = map(_TIME.pack, repeat(6), repeat(8), map(PG_EPOCH_US.__rsub__, cols.times[part]))
    value_quality = map(_VALUE_QUALITY.pack, repeat(8), cols.values[part], repeat(2), cols.qualities[part])
    fields = zip(
        times,
        map(text_field, cols.devices[part]),
        map(text_field, cols.metrics[part]),
        value_quality,
        map(text_field, cols.tenants[part]),
        strict=True,
    )
    head = HEADER if start == 0 else b""
    tail = TRAILER if stop >= len(cols) else b""
    return b"".join((head, *chain.from_iterable(fields), tail))


def events_copy(rows: Iterable[EventRow]) -> bytes:
    """Binary COPY data for columns (time, device_id, kind, attrs jsonb, quality, tenant_id)."""
    parts = [HEADER]
    for time_us, device, kind, attrs, quality, tenant in rows:
        raw = attrs.encode()
        parts += [
            _TIME.pack(6, 8, time_us - PG_EPOCH_US),
            _texts[device],
            _texts[kind],
            _LEN.pack(len(raw) + 1) + b"\x01" + raw,  # jsonb binary: version 1 then text
            _QUALITY.pack(2, quality),
            _texts[tenant],
        ]
    parts.append(TRAILER)
    return b"".join(parts)
