"""Checks for `territoire doctor` and a slave scan for `territoire agent scan`.

A probe never raises: every problem becomes a failed ProbeResult that says
what to do about it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from .config import (
    ChirpstackConfig,
    ModbusRtuConfig,
    ModbusTcpConfig,
    MqttBrokerConfig,
    SerialLoraConfig,
    SourceConfig,
    TtsConfig,
)
from .modbus_wire import (
    ExceptionResponseError,
    LinkError,
    ModbusError,
    RtuTransport,
    SlaveTimeoutError,
    TcpTransport,
    Transport,
    read_request,
)


@dataclass(frozen=True)
class ProbeResult:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _ping(transport: Transport, unit: int, timeout: float) -> bool:
    """True when the slave answers anything, even a Modbus exception."""
    try:
        transport.transact(unit, read_request("holding", 0, 1), timeout)
    except ExceptionResponseError:
        return True
    except SlaveTimeoutError:
        return False
    return True


def _serial_port(name: str, port: str) -> ProbeResult:
    if not os.path.exists(port):
        return ProbeResult(
            f"{name}: serial port",
            False,
            f"{port} does not exist",
            "plug the adapter in, or fix `port` (ls /dev/serial/by-id)",
        )
    import serial

    try:
        handle = serial.Serial(port, exclusive=True, timeout=0.1)
    except (OSError, serial.SerialException) as exc:
        return ProbeResult(
            f"{name}: serial port",
            False,
            f"{port} cannot be opened: {exc}",
            "stop the other program using it (fuser -v PORT) or add the agent's user to the dialout group",
        )
    handle.close()
    return ProbeResult(f"{name}: serial port", True, f"{port} present and free")


def _modbus(config: ModbusRtuConfig | ModbusTcpConfig) -> list[ProbeResult]:
    results: list[ProbeResult] = []
    transport: Transport
    if isinstance(config, ModbusRtuConfig):
        results.append(_serial_port(config.name, config.port))
        if not results[-1].ok:
            return results
        transport = RtuTransport(config.port, config.baudrate, config.parity, config.stopbits)
    else:
        transport = TcpTransport(config.host, config.port, connect_timeout=2.0)
    try:
        for device in config.devices:
            label = f"{config.name}: {device.device_id} (slave {device.slave_id})"
            try:
                if _ping(transport, device.slave_id, device.timeout_s):
                    results.append(ProbeResult(label, True, "answers"))
                else:
                    results.append(
                        ProbeResult(
                            label,
                            False,
                            f"no answer within {device.timeout_s} s",
                            "check power, slave id, A/B wiring, termination and baud rate/parity",
                        )
                    )
            except LinkError as exc:
                fix = (
                    "check the cable and the adapter"
                    if isinstance(config, ModbusRtuConfig)
                    else "check host, port and network"
                )
                results.append(ProbeResult(f"{config.name}: link", False, str(exc), fix))
                break
            except ModbusError as exc:
                results.append(
                    ProbeResult(label, False, str(exc), "check the slave id: another device answered oddly")
                )
    finally:
        transport.close()
    return results


def _broker(name: str, broker: MqttBrokerConfig, timeout: float = 3.0) -> ProbeResult:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    outcome: list[str] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"territoire-probe-{os.getpid()}")
    if broker.username is not None:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set(ca_certs=broker.ca_file)

    def on_connect(_c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        outcome.append(str(reason))
        done.set()

    client.on_connect = on_connect
    where = f"{broker.host}:{broker.port}"
    try:
        client.connect(broker.host, broker.port, keepalive=10)
        client.loop_start()
        done.wait(timeout)
    except OSError as exc:
        return ProbeResult(
            f"{name}: LNS broker", False, f"{where} unreachable: {exc}", "check host, port, firewall and TLS"
        )
    finally:
        client.disconnect()
        client.loop_stop()
    if not outcome:
        return ProbeResult(
            f"{name}: LNS broker", False, f"no MQTT answer from {where}", "check the port and TLS settings"
        )
    if outcome[0] != "Success":
        return ProbeResult(
            f"{name}: LNS broker",
            False,
            f"{where} refused: {outcome[0]}",
            "check the username and API key / password",
        )
    return ProbeResult(f"{name}: LNS broker", True, f"{where} accepts our credentials")


def _serial_lora(config: SerialLoraConfig) -> list[ProbeResult]:
    results = [_serial_port(config.name, config.port)]
    if not results[0].ok:
        return results
    import serial

    try:
        with serial.Serial(config.port, config.baudrate, timeout=1.0) as port:
            port.write(b"AT\r\n")
            answer = port.readline().decode("ascii", "replace").strip()
    except (OSError, serial.SerialException) as exc:
        answer = f"error: {exc}"
    ok = answer == "OK"
    results.append(
        ProbeResult(
            f"{config.name}: LoRa module",
            ok,
            "answers AT commands" if ok else f"unexpected answer {answer!r}",
            "" if ok else "check the baud rate and that the module runs RUI3 AT firmware",
        )
    )
    return results


def probe(config: SourceConfig) -> list[ProbeResult]:
    """Check that a source's transport and devices are reachable."""
    if isinstance(config, ModbusRtuConfig | ModbusTcpConfig):
        return _modbus(config)
    if isinstance(config, ChirpstackConfig | TtsConfig):
        return [_broker(config.name, config.broker)]
    return _serial_lora(config)


def scan(
    *,
    port: str | None = None,
    host: str | None = None,
    slave_range: Iterable[int] = range(1, 248),
    baudrate: int = 9600,
    parity: str = "N",
    tcp_port: int = 502,
    timeout: float = 0.1,
) -> list[int]:
    """Slave ids that answer on a serial bus (port) or behind a Modbus TCP gateway (host)."""
    if (port is None) == (host is None):
        raise ValueError("scan needs exactly one of port or host")
    transport: Transport = (
        RtuTransport(port, baudrate, parity) if port is not None else TcpTransport(host or "", tcp_port)
    )
    found = []
    try:
        for unit in slave_range:
            if _ping(transport, unit, timeout):
                found.append(unit)
    finally:
        transport.close()
    return found
