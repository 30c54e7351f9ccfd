"""Hypothesis strategies producing valid kernel records."""

from __future__ import annotations

from hypothesis import strategies as st

from territoire_kernel.records import MAX_TIME_US, MIN_TIME_US, Event, Quality, Reading
from territoire_kernel.wire import Batch, Command, CommandResult, CommandStatus, GatewayState, Status

slugs = st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True)
device_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,30}", fullmatch=True)
metrics = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
times = st.integers(min_value=MIN_TIME_US, max_value=MAX_TIME_US - 1)
qualities = st.sampled_from([Quality(v) for v in range(32)])
values = st.floats(allow_nan=False, allow_infinity=False, width=64) | st.integers(-(2**53), 2**53).map(float)
units = st.none() | st.text(max_size=8)
attr_values = (
    st.text(max_size=10)
    | st.integers(-(2**63), 2**63 - 1)
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
)
attrs = st.dictionaries(st.text(min_size=1, max_size=8), attr_values, max_size=4)
boot_ids = st.from_regex(r"[a-f0-9]{32}", fullmatch=True)
command_ids = st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True)

readings = st.builds(
    Reading, device_id=device_ids, metric=metrics, value=values, time_us=times, unit=units, quality=qualities
)
events = st.builds(Event, device_id=device_ids, kind=metrics, time_us=times, attrs=attrs, quality=qualities)
batches = st.builds(
    Batch,
    gateway_id=slugs,
    boot_id=boot_ids,
    seq=st.integers(0, 2**63 - 1),
    readings=st.lists(readings, max_size=20).map(tuple),
    events=st.lists(events, max_size=5).map(tuple),
    sent_us=st.none() | times,
)
non_negative = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)
statuses = st.builds(
    Status,
    gateway_id=slugs,
    state=st.sampled_from(GatewayState),
    boot_id=boot_ids,
    time_us=times,
    version=st.text(max_size=12),
    uptime_s=non_negative,
    buffer_batches=st.integers(0, 2**40),
    buffer_readings=st.integers(0, 2**40),
    oldest_unsent_age_s=non_negative,
    dropped_readings=st.integers(0, 2**40),
    clock_synced=st.booleans(),
)


@st.composite
def commands(draw: st.DrawFn) -> Command:
    issued = draw(st.integers(MIN_TIME_US, MAX_TIME_US - 10_000_000))
    expires = draw(st.integers(issued + 1, MAX_TIME_US - 1))
    return Command(
        command_id=draw(command_ids),
        device_id=draw(device_ids),
        action=draw(metrics),
        issued_us=issued,
        expires_us=expires,
        params=draw(attrs),
    )


command_results = st.builds(
    CommandResult,
    command_id=command_ids,
    gateway_id=slugs,
    status=st.sampled_from(CommandStatus),
    time_us=times,
    detail=st.text(max_size=50),
)
messages = batches | statuses | commands() | command_results
