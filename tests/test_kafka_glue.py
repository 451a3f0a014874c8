"""Routing of recorded lines to input topics (unit; the broker tests cover the rest)."""

import pytest

from pipeline.kafka.recording import route
from pipeline.kafka.topics import INPUTS, TOPIC_FOR_KIND
from pipeline.settings import Settings


@pytest.mark.parametrize("kind, topic", sorted(TOPIC_FOR_KIND.items()))
def test_each_kind_goes_to_its_topic_keyed_by_room(kind, topic):
    assert route(f'{{"kind": "{kind}", "room_id": "r-7"}}'.encode()) == (topic, b"r-7")


@pytest.mark.parametrize("line", [b"{not json", b"[]", b'{"kind": "telepathy", "room_id": "r"}', b'{"room_id": 1}'])
def test_unroutable_lines_still_go_to_an_input_topic_so_the_worker_dead_letters_them(line):
    assert route(line)[0] == "live.chat"


def test_every_input_topic_takes_at_least_one_kind_and_the_prefix_applies():
    assert all(t.kinds for t in INPUTS)
    assert Settings(topic_prefix="staging.").topic("live.chat") == "staging.live.chat"
    assert Settings(broker="kafka://a:1;kafka://b:2").bootstrap_servers() == "a:1,b:2"
