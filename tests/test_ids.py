"""Derived ids are uuid5 of their parts: the written-out computation gives what ``uuid.uuid5`` gives."""

import random
import uuid

from schemas.findings import ID_NAMESPACE, derived_id


def test_a_derived_id_is_the_uuid5_of_its_parts():
    rng = random.Random(49)
    alphabet = "abc019_-:|\x1f 全网最低价瘦😀\u0000\ud7ff"
    cases: list[tuple[object, ...]] = [(), ("",), ("action", "room", "room:r1", 2, "suspend", 1769947200000, 3)]
    for _ in range(20_000):
        parts = [
            rng.choice([rng.randint(-(10**15), 10**15), "".join(rng.choices(alphabet, k=rng.randint(0, 30))), None])
            for _ in range(rng.randint(1, 6))
        ]
        cases.append(tuple(parts))
    for parts in cases:
        expected = str(uuid.uuid5(ID_NAMESPACE, "\x1f".join(str(p) for p in parts)))
        assert derived_id(*parts) == expected, parts
