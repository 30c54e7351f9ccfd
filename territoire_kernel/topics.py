"""The MQTT topic scheme, versioned, with tenant and gateway in every topic.

    territoire/v1/{tenant}/{gateway}/up          batches of readings/events (QoS 1)
    territoire/v1/{tenant}/{gateway}/status      retained status, also the last will
    territoire/v1/{tenant}/{gateway}/cmd         commands to the gateway (QoS 1)
    territoire/v1/{tenant}/{gateway}/cmd/result  command results (QoS 1)

Putting tenant and gateway in the topic lets the broker's ACL confine each
gateway's credentials to its own subtree.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import TopicError, ValidationError
from .ids import gateway_id, tenant_id

ROOT = "territoire"
VERSION = "v1"
PREFIX = f"{ROOT}/{VERSION}"


class TopicKind(enum.Enum):
    UP = "up"
    STATUS = "status"
    COMMAND = "cmd"
    COMMAND_RESULT = "cmd/result"


@dataclass(frozen=True, slots=True)
class GatewayTopic:
    tenant: str
    gateway: str
    kind: TopicKind

    def __str__(self) -> str:
        return topic(self.tenant, self.gateway, self.kind)


def topic(tenant: str, gateway: str, kind: TopicKind) -> str:
    """Build a topic; raises ValidationError for ids unsafe in a topic."""
    return f"{PREFIX}/{tenant_id(tenant)}/{gateway_id(gateway)}/{kind.value}"


def gateway_subtree(tenant: str, gateway: str) -> str:
    """The subtree a gateway's ACL covers, for broker configuration."""
    return f"{PREFIX}/{tenant_id(tenant)}/{gateway_id(gateway)}/#"


def subscription(kind: TopicKind, *, tenant: str | None = None, share_group: str | None = None) -> str:
    """A subscription filter for every gateway (of one tenant, if given).

    With share_group, an MQTT 5 shared subscription so several ingest workers
    split the messages between them.
    """
    tenant_part = tenant_id(tenant) if tenant is not None else "+"
    filt = f"{PREFIX}/{tenant_part}/+/{kind.value}"
    if share_group is not None:
        if not share_group or any(ch in share_group for ch in "/+#"):
            raise TopicError(f"invalid shared subscription group {share_group!r}")
        return f"$share/{share_group}/{filt}"
    return filt


def parse_topic(name: str) -> GatewayTopic:
    """Split a territoire topic into tenant, gateway and kind."""
    parts = name.split("/")
    if len(parts) < 5 or parts[0] != ROOT:
        raise TopicError(f"not a territoire topic: {name!r}")
    if parts[1] != VERSION:
        raise TopicError(f"unsupported topic version {parts[1]!r} in {name!r} (expected {VERSION})")
    suffix = "/".join(parts[4:])
    try:
        kind = TopicKind(suffix)
    except ValueError:
        raise TopicError(f"unknown topic kind {suffix!r} in {name!r}") from None
    try:
        return GatewayTopic(tenant_id(parts[2]), gateway_id(parts[3]), kind)
    except ValidationError as exc:
        raise TopicError(f"{exc} in topic {name!r}") from None
