"""Start-up without OpenSSL when the configuration needs no TLS.

paho-mqtt imports `ssl` and `hashlib` when it loads; both bring OpenSSL's
libcrypto, which costs about 8 MB of resident memory on its own (the library's
relocated pages and what its initialisation allocates): a fifth of the agent's
peak. A gateway that talks to its brokers in clear (a broker on the gateway's
VPN or LAN) and serves no metrics never uses it, so `territoire agent run`
then imports paho with `ssl` and `_hashlib` hidden: paho sees no TLS support,
`hashlib` falls back to Python's built-in digests. Anything that needs TLS
(the platform broker with `tls: true`, an LNS broker with `tls: true`, the
Prometheus endpoint, whose library imports `ssl`) keeps the normal import.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from .config import AgentConfig

_HIDDEN = ("ssl", "_ssl", "_hashlib")


def needs_openssl(config: AgentConfig) -> bool:
    if config.mqtt.tls or config.metrics is not None:
        return True
    return any(getattr(getattr(source, "broker", None), "tls", False) for source in config.sources)


def import_mqtt_without_openssl() -> bool:
    """Import paho-mqtt with OpenSSL hidden; False if it (or OpenSSL) is already loaded."""
    if any(name in sys.modules for name in ("paho.mqtt.client", "hashlib", *_HIDDEN)):
        return False
    modules: dict[str, Any] = sys.modules  # a None entry makes `import name` raise ImportError
    for name in _HIDDEN:
        modules[name] = None
    try:
        importlib.import_module("paho.mqtt.client")
    except ImportError:
        # A paho release that needs ssl at import: give up the saving, never the start-up.
        for name in [m for m in modules if m == "paho" or m.startswith("paho.")]:
            del modules[name]
        return False
    finally:
        for name in _HIDDEN:
            if name in modules and modules[name] is None:
                del modules[name]
    return True
