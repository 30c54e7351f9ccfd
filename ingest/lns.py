"""Direct subscription to a LoRaWAN network server (ChirpStack v4, TTS v3).

For sites without an edge agent. Each uplink yields the link-quality readings
(RSSI, SNR) and, when the device has a firmware profile, the decoded readings
and events (stored in ``events`` like those an agent sends).
The network server's deduplication id (stored in lns_uplinks) makes a
redelivered uplink a no-op.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from firmware_profiles.lns import Uplink, link_quality_readings, parse_chirpstack_uplink, parse_tts_uplink
from territoire_kernel.errors import CodecError, ConfigError, TopicError
from territoire_kernel.records import Event, Reading

from .pipeline import Classifier, DeadLetter, Delivery, ReadingCols, Work, event_rows

log = logging.getLogger(__name__)

# (profile name, uplink) -> readings and events of the device; raises CodecError on bad frames.
UplinkDecoder = Callable[[str, Uplink], Sequence[Reading | Event]]


def firmware_profile_decoder() -> UplinkDecoder | None:
    """Decodes with the firmware profile catalogue (firmware_profiles.load_catalog)."""
    try:
        module: Any = importlib.import_module("firmware_profiles")
        catalog = module.load_catalog()
    except (AttributeError, ImportError) as exc:
        log.info("firmware profile decoding unavailable (%s): only link quality is stored", exc)
        return None

    def decode(profile_id: str, uplink: Uplink) -> list[Reading | Event]:
        try:
            profile = catalog.get(profile_id)
        except ConfigError as exc:  # a device registered with a profile this build does not know
            raise CodecError(str(exc)) from None
        decoded = profile.decode_uplink(
            uplink.payload, uplink.f_port, device_id=uplink.device_id, time_us=uplink.time_us
        )
        return [*decoded.readings, *decoded.events]

    return decode


def _parse(topic: str, payload: bytes) -> Uplink:
    if topic.startswith("application/"):
        return parse_chirpstack_uplink(topic, payload)
    if topic.startswith("v3/"):
        return parse_tts_uplink(topic, payload)
    raise TopicError(f"not a territoire, ChirpStack or The Things Stack uplink topic: {topic[:200]!r}")


def make_lns_handler(decoder: UplinkDecoder | None) -> Callable[[Classifier, Delivery, Work], None]:
    def handle(classifier: Classifier, delivery: Delivery, work: Work) -> None:
        uplink = _parse(delivery.topic, delivery.payload)
        candidates = dict.fromkeys([uplink.device_id, uplink.dev_eui, uplink.dev_eui.upper()])
        found = [(name, classifier.device(name, None, None, work)) for name in candidates]
        known = [(name, info) for name, info in found if info is not None]
        if not known:
            reason = f"unknown device {uplink.device_id!r} (DevEUI {uplink.dev_eui}) from {uplink.source}"
            work.dead.append(DeadLetter(delivery.topic, delivery.payload, reason))
            return
        device, info = known[0]
        readings = link_quality_readings(uplink, device)
        events: list[Event] = []
        if info.profile:
            if decoder is None:
                reason = (
                    f"device {device!r} uses profile {info.profile!r} but no profile decoder is available"
                )
                work.dead.append(
                    DeadLetter(delivery.topic, delivery.payload, reason, info.tenant_id, info.gateway_id)
                )
                return
            try:
                decoded = decoder(info.profile, uplink)
            except CodecError as exc:
                reason = f"profile {info.profile!r} cannot decode the uplink of {device!r}: {exc}"
                work.dead.append(
                    DeadLetter(delivery.topic, delivery.payload, reason, info.tenant_id, info.gateway_id)
                )
                return
            # Stored under the registered id, whatever id the decoder used.
            readings += [
                Reading(device, r.metric, r.value, r.time_us, r.unit, r.quality)
                for r in decoded
                if isinstance(r, Reading)
            ]
            events += [
                Event(device, e.kind, e.time_us, e.attrs, e.quality) for e in decoded if isinstance(e, Event)
            ]
        work.lns.append(
            (
                f"{uplink.source}:{uplink.dedup_id}",
                ReadingCols.from_readings(readings, info.tenant_id),
                event_rows(events, info.tenant_id),
            )
        )

    return handle
