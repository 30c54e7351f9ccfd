"""Build network-server uplink events in the real ChirpStack v4 / The Things Stack v3 JSON formats."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field

from territoire_kernel.records import from_time_us

# Fixed ids so generated events look like one real deployment.
TENANT_UUID = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242"
APPLICATION_UUID = "17c82e96-be03-4f38-aef3-f83d48582d97"


def _iso(time_us: int, digits: int = 6) -> str:
    text = from_time_us(time_us).strftime("%Y-%m-%dT%H:%M:%S.%f")
    # ChirpStack prints nanoseconds; pad so parsers meet the real width.
    return text + "0" * (digits - 6) + ("+00:00" if digits > 6 else "Z")


@dataclass
class Gateway:
    gateway_id: str  # 16 hex digits (ChirpStack) / an id (TTS)
    rssi: float
    snr: float


@dataclass
class LnsDevice:
    dev_eui: str
    name: str  # TTS device id / ChirpStack device name
    application_id: str = APPLICATION_UUID
    f_cnt: int = 0
    gateways: list[Gateway] = field(default_factory=lambda: [Gateway("0016c001f153a14c", -97.0, 6.5)])


def chirpstack_uplink(device: LnsDevice, f_port: int, payload: bytes, time_us: int) -> tuple[str, bytes]:
    """Topic and body of a ChirpStack v4 `event/up` (JSON marshaler); advances f_cnt."""
    device.f_cnt += 1
    body = {
        "deduplicationId": str(uuid.uuid4()),
        "time": _iso(time_us, 9),
        "deviceInfo": {
            "tenantId": TENANT_UUID,
            "tenantName": "Commune",
            "applicationId": device.application_id,
            "applicationName": "capteurs",
            "deviceProfileId": "0b1a5c2e-7f0c-4d5e-9a53-1c2d3e4f5a6b",
            "deviceProfileName": "profile",
            "deviceName": device.name,
            "devEui": device.dev_eui.lower(),
            "deviceClassEnabled": "CLASS_A",
            "tags": {},
        },
        "devAddr": "00189440",
        "adr": True,
        "dr": 5,
        "fCnt": device.f_cnt,
        "fPort": f_port,
        "confirmed": False,
        "data": base64.b64encode(payload).decode(),
        "rxInfo": [
            {
                "gatewayId": gw.gateway_id,
                "uplinkId": 1000 + i,
                "rssi": int(gw.rssi),
                "snr": gw.snr,
                "channel": 2,
                "location": {},
                "context": "E3OWOQ==",
                "metadata": {"region_config_id": "eu868", "region_common_name": "EU868"},
                "crcStatus": "CRC_OK",
            }
            for i, gw in enumerate(device.gateways)
        ],
        "txInfo": {
            "frequency": 868100000,
            "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 7, "codeRate": "CR_4_5"}},
        },
    }
    topic = f"application/{device.application_id}/device/{device.dev_eui.lower()}/event/up"
    return topic, json.dumps(body).encode()


def tts_uplink(
    device: LnsDevice,
    f_port: int,
    payload: bytes,
    time_us: int,
    *,
    application_id: str,
    tenant_id: str = "ttn",
) -> tuple[str, bytes]:
    """Topic and body of a The Things Stack v3 `up` message; advances f_cnt."""
    device.f_cnt += 1
    ulid = uuid.uuid4().hex.upper()[:26]
    received = _iso(time_us)
    body = {
        "end_device_ids": {
            "device_id": device.name,
            "application_ids": {"application_id": application_id},
            "dev_eui": device.dev_eui.upper(),
            "join_eui": "0000000000000000",
            "dev_addr": "260B1234",
        },
        "correlation_ids": [f"as:up:{ulid}", f"gs:uplink:{ulid}", f"ns:uplink:{ulid}"],
        "received_at": received,
        "uplink_message": {
            "session_key_id": "AXBSH1Pk6Z0G166A1B2C3D==",
            "f_port": f_port,
            "f_cnt": device.f_cnt,
            "frm_payload": base64.b64encode(payload).decode(),
            "rx_metadata": [
                {
                    "gateway_ids": {"gateway_id": f"gw-{gw.gateway_id[-4:]}", "eui": gw.gateway_id.upper()},
                    "time": received,
                    "timestamp": 2463457000 + i,
                    "rssi": int(gw.rssi),
                    "channel_rssi": int(gw.rssi),
                    "snr": gw.snr,
                    "uplink_token": "ChIKEAoOZ3ctMDAxNmMwMDFmMTUz",
                    "channel_index": 2,
                    "received_at": received,
                }
                for i, gw in enumerate(device.gateways)
            ],
            "settings": {
                "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7, "coding_rate": "4/5"}},
                "frequency": "868100000",
                "timestamp": 2463457000,
                "time": received,
            },
            "received_at": received,
            "consumed_airtime": "0.061696s",
            "network_ids": {"net_id": "000013", "tenant_id": tenant_id, "cluster_id": "eu1"},
        },
    }
    topic = f"v3/{application_id}@{tenant_id}/devices/{device.name}/up"
    return topic, json.dumps(body).encode()
