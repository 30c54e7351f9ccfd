from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from territoire_kernel.errors import TopicError, ValidationError
from territoire_kernel.ids import device_id, tenant_id
from territoire_kernel.topics import (
    GatewayTopic,
    TopicKind,
    gateway_subtree,
    parse_topic,
    subscription,
    topic,
)

from .strategies import slugs


@given(slugs, slugs, st.sampled_from(TopicKind))
def test_topics_round_trip(tenant: str, gateway: str, kind: TopicKind) -> None:
    name = topic(tenant, gateway, kind)
    assert parse_topic(name) == GatewayTopic(tenant, gateway, kind)
    assert name.startswith(gateway_subtree(tenant, gateway)[:-1])


def test_known_topic_shapes() -> None:
    assert topic("is-sur-tille", "gw-mairie", TopicKind.UP) == "territoire/v1/is-sur-tille/gw-mairie/up"
    assert topic("pma", "gw-1", TopicKind.COMMAND_RESULT) == "territoire/v1/pma/gw-1/cmd/result"
    assert subscription(TopicKind.UP) == "territoire/v1/+/+/up"
    assert subscription(TopicKind.UP, share_group="ingest") == "$share/ingest/territoire/v1/+/+/up"
    assert subscription(TopicKind.STATUS, tenant="pma") == "territoire/v1/pma/+/status"


@pytest.mark.parametrize(
    "bad",
    [
        "territoire/v2/a/b/up",
        "territoire/v1/a/b/down",
        "other/v1/a/b/up",
        "territoire/v1/A/b/up",
        "territoire/v1/a/+/up",
        "territoire/v1/a",
        "",
    ],
)
def test_bad_topics_raise_topic_error(bad: str) -> None:
    with pytest.raises(TopicError):
        parse_topic(bad)


@given(st.text(max_size=60))
def test_parse_topic_raises_only_topic_error(name: str) -> None:
    with contextlib.suppress(TopicError):
        parse_topic(name)


def test_ids_cannot_carry_mqtt_wildcards() -> None:
    for bad in ("a+b", "a#", "a/b", "", "-x", "A"):
        with pytest.raises(ValidationError):
            tenant_id(bad)
    with pytest.raises(ValidationError):
        device_id("a b")
    assert device_id("a84041000181c7b2") == "a84041000181c7b2"
    with pytest.raises(TopicError):
        subscription(TopicKind.UP, share_group="a/b")
