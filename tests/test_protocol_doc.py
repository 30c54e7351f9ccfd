"""Every example in docs/protocol.md decodes, on the topic it is shown with."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from territoire_kernel.topics import TopicKind, parse_topic
from territoire_kernel.wire import Batch, Command, CommandResult, Encoding, Status, decode, encode

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
BLOCK = re.compile(r"^```(json|cbor-hex) topic=(\S+)\n(.*?)^```", re.S | re.M)
EXPECTED = {
    TopicKind.UP: Batch,
    TopicKind.STATUS: Status,
    TopicKind.COMMAND: Command,
    TopicKind.COMMAND_RESULT: CommandResult,
}
EXAMPLES = BLOCK.findall(DOC.read_text())


def test_every_topic_kind_has_an_example() -> None:
    kinds = {parse_topic(topic).kind for _, topic, _ in EXAMPLES}
    assert kinds == set(TopicKind)


@pytest.mark.parametrize(("fmt", "topic", "body"), EXAMPLES, ids=[f"{f}:{t}" for f, t, _ in EXAMPLES])
def test_example_decodes(fmt: str, topic: str, body: str) -> None:
    payload = bytes.fromhex(body.strip()) if fmt == "cbor-hex" else body.encode()
    message = decode(payload)
    assert isinstance(message, EXPECTED[parse_topic(topic).kind])
    assert decode(encode(message, Encoding.JSON)) == message


def test_json_and_cbor_examples_describe_the_same_batch() -> None:
    batches = [
        decode(body.encode() if f == "json" else bytes.fromhex(body.strip()))
        for f, t, body in EXAMPLES
        if t.endswith("/up")
    ]
    assert len(batches) == 2 and batches[0] == batches[1]
