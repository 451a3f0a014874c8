"""The evidence archive's pure parts, without a broker: rows, the writer, the manifest and its verification
(a flipped byte, a deleted file, two swapped files, a removed or edited entry, a file slipped in), reading with
duplicates removed, an interrupted flush recovered, retention and erasure, backfill shards and the diff, the
reports, and the command line's answers to bad input."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date
from pathlib import Path

import pytest

from pipeline.archive.backfill import backfill, diff_outputs
from pipeline.archive.cli import parse_time
from pipeline.archive.manifest import PENDING, load, verify
from pipeline.archive.query import html_page, run_report
from pipeline.archive.reader import ArchiveReader
from pipeline.archive.retention import forget, prune, retention_of
from pipeline.archive.rows import dead_letter_row, event_row
from pipeline.archive.sink import ArchiveSink
from pipeline.archive.storage import ArchiveError, open_store
from pipeline.archive.writer import ArchiveWriter
from pipeline.cli import main
from pipeline.embedded import EmbeddedRuntime, read_jsonl
from pipeline.privacy import DEV_KEY, Pseudonymizer
from pipeline.simulator import demo_lines
from schemas.deadletter import DeadLetter, MessageSource
from tests.builders import T0

DAY = 24 * 3600 * 1000


def message(i: int, room: str = "r1", ts: int = T0, platform: str = "douyin") -> bytes:
    """A chat message on the wire; ids e<i>, users user-0..2."""
    fields = {"kind": "chat", "event_id": f"e{i}", "room_id": room, "platform": platform, "ts": ts}
    return json.dumps({**fields, "user_id": f"user-{i % 3}", "text": f"hello {i}"}).encode()


def archive_of(tmp_path: Path, batches: list[list[bytes]]) -> Path:
    """An archive written by one writer, one flush per batch (so one file per partition per batch)."""
    root = tmp_path / "archive"
    writer = ArchiveWriter(open_store(str(root)), "w")
    for batch in batches:
        for n, raw in enumerate(batch):
            writer.add(event_row(raw, MessageSource(file="rec.jsonl", line=n), n, 0))
        writer.flush()
    return root


def files_of(root: Path) -> list[Path]:
    """The data files in chain order (the writer's sequence number is in the name)."""
    return sorted(root.glob("*/day=*/platform=*/*.parquet"), key=lambda p: p.name)


# -- rows ------------------------------------------------------------------------------------------------


def test_an_event_row_reads_its_columns_and_keeps_the_exact_bytes():
    raw = message(1, ts=T0)
    row = event_row(raw, MessageSource("live.chat", 2, 17), 5, 0)
    assert (row.data_class, row.id, row.room_id, row.platform, row.kind, row.ts, row.subject, row.seq) == (
        "events",
        "e1",
        "r1",
        "douyin",
        "chat",
        T0,
        "user-1",
        5,
    )
    assert row.payload is raw


def test_what_is_not_an_event_is_archived_all_the_same_by_its_source():
    row = event_row(b"\xff{not json", MessageSource("live.chat", 0, 9), None, fallback_ts=T0 + 5)
    assert (row.id, row.room_id, row.platform, row.ts) == ("live.chat[0]@9", None, "_unknown", T0 + 5)
    odd = event_row(message(1, platform="a/b c"), MessageSource("live.chat", 0, 1), None, 0)
    assert odd.platform == "_other"  # never a path component it could escape from


def test_a_dead_letter_row_is_filed_under_the_rejected_message_room_and_time():
    rejected = message(3, room="r9", ts=T0 + 7)
    letter = DeadLetter.of(rejected, "schema_violation", "x", MessageSource(topic="live.chat", partition=1, offset=4))
    row = dead_letter_row(letter.model_dump_json().encode(), MessageSource("live.dlq", 0, 0), 0)
    assert (row.id, row.room_id, row.ts, row.kind) == ("live.chat[1]@4", "r9", T0 + 7, "schema_violation")


# -- writer and manifest ---------------------------------------------------------------------------------


def test_files_are_partitioned_by_class_day_and_platform_and_verify(tmp_path):
    root = archive_of(tmp_path, [[message(1), message(2, ts=T0 + DAY), message(3, platform="kuaishou")]])
    parts = sorted(str(p.parent.relative_to(root)) for p in files_of(root))
    assert parts == [
        "events/day=2026-02-01/platform=douyin",
        "events/day=2026-02-01/platform=kuaishou",
        "events/day=2026-02-02/platform=douyin",
    ]
    report = verify(open_store(str(root)))
    assert report.ok and report.files_checked == 3 and report.heads["w"][0] == 3
    assert not list(root.rglob("_tmp-*"))  # no temporary file left behind


def test_a_flipped_byte_is_named(tmp_path):
    root = archive_of(tmp_path, [[message(1)], [message(2)], [message(3)]])
    second = files_of(root)[1]
    data = bytearray(second.read_bytes())
    data[100] ^= 0x01
    second.write_bytes(bytes(data))
    report = verify(open_store(str(root)))
    assert [(p.what, p.path) for p in report.problems] == [("changed", str(second.relative_to(root)))]


def test_a_deleted_file_is_named(tmp_path):
    root = archive_of(tmp_path, [[message(1)], [message(2)]])
    first = files_of(root)[0]
    first.unlink()
    report = verify(open_store(str(root)))
    assert [(p.what, p.path) for p in report.problems] == [("removed", str(first.relative_to(root)))]


def test_two_swapped_files_are_named_first_one_first(tmp_path):
    root = archive_of(tmp_path, [[message(1)], [message(2)], [message(3)]])
    a, _, c = files_of(root)
    a_bytes, c_bytes = a.read_bytes(), c.read_bytes()
    a.write_bytes(c_bytes)
    c.write_bytes(a_bytes)
    report = verify(open_store(str(root)))
    assert [(p.what, p.path) for p in report.problems] == [
        ("reordered", str(a.relative_to(root))),
        ("reordered", str(c.relative_to(root))),
    ]
    assert str(c.relative_to(root)) in report.problems[0].detail


def test_removed_edited_and_swapped_manifest_entries_break_the_chain(tmp_path):
    root = archive_of(tmp_path, [[message(1)], [message(2)], [message(3)]])
    entries = sorted((root / "_manifest" / "w").glob("0*.json"))
    original = [e.read_bytes() for e in entries]

    entries[1].unlink()  # an entry removed (with its file: the file is now unlisted)
    problems = verify(open_store(str(root))).problems
    assert problems[0].what == "entry-missing" and problems[0].path.endswith("000000000003.json")
    entries[1].write_bytes(original[1])

    edited = json.loads(original[1])
    edited["rows"] = 99  # an edit without recomputing the hash
    entries[1].write_text(json.dumps(edited))
    assert verify(open_store(str(root))).problems[0].what == "entry-edited"

    entries[1].write_text("{ not JSON")  # an entry made unreadable
    problems = verify(open_store(str(root))).problems
    assert (problems[0].what, problems[0].path) == ("entry-edited", str(entries[1].relative_to(root)))

    del edited["path"]  # an entry missing a field
    entries[1].write_text(json.dumps(edited))
    assert verify(open_store(str(root))).problems[0].what == "entry-edited"
    edited = json.loads(original[1])
    edited["rows"] = 99

    edited["hash"] = "x"  # ... and with the hash recomputed the next entry's link breaks
    from pipeline.archive.manifest import entry_hash

    edited["hash"] = entry_hash(edited)
    entries[1].write_text(json.dumps(edited))
    problems = verify(open_store(str(root))).problems
    assert (problems[0].what, problems[0].path) == ("reordered", str(entries[2].relative_to(root)))


def test_a_file_no_entry_lists_is_reported(tmp_path):
    root = archive_of(tmp_path, [[message(1)]])
    intruder = files_of(root)[0].parent / "extra.parquet"
    shutil.copy(files_of(root)[0], intruder)
    problems = verify(open_store(str(root))).problems
    assert [(p.what, p.path) for p in problems] == [("unlisted", str(intruder.relative_to(root)))]


def test_verify_from_a_day_rehashes_only_the_later_days(tmp_path):
    root = archive_of(tmp_path, [[message(1)], [message(2, ts=T0 + 2 * DAY)]])
    old = files_of(root)[0]
    old.write_bytes(old.read_bytes()[:-1] + b"x")
    assert not verify(open_store(str(root))).ok
    report = verify(open_store(str(root)), from_day="2026-02-02")
    assert report.ok and report.files_checked == 1


def test_an_interrupted_flush_is_recovered_without_loss(tmp_path):
    root = archive_of(tmp_path, [[message(1)]])
    store = open_store(str(root))
    # a flush that renamed its file and then died before chaining it: simulate by removing the entry after
    writer = ArchiveWriter(store, "w")
    writer.add(event_row(message(2), MessageSource(file="f", line=1), 1, 0))
    pending = writer._pending_name()
    writer.flush()
    (root / "_manifest" / "w" / "000000000002.json").unlink()
    planned = [p for p in files_of(root) if p.name.endswith("000000000002.parquet")]
    store.write_atomically(
        pending,
        json.dumps(
            {
                "files": [
                    {
                        "seq": 2,
                        "path": str(planned[0].relative_to(root)),
                        "data_class": "events",
                        "day": "2026-02-01",
                        "platform": "douyin",
                        "min_ts": T0,
                        "max_ts": T0,
                    }
                ]
            }
        ).encode(),
    )
    assert not verify(store).ok  # the file is there, unlisted
    ArchiveWriter(store, "w")  # the next writer of that name adopts it
    assert verify(store).ok
    assert not (root / "_manifest" / "w" / PENDING).exists()
    reader = ArchiveReader(store)
    reader.views()
    assert reader.query("SELECT count(*) FROM events")[1] == [(2,)]


def test_duplicates_are_removed_at_read_but_a_different_message_with_the_same_id_is_kept(tmp_path):
    other_bytes = message(1).replace(b"hello 1", b"hello again")
    root = archive_of(tmp_path, [[message(1), message(2)], [message(1)], [other_bytes]])
    reader = ArchiveReader(open_store(str(root)))
    reader.views()
    assert reader.query("SELECT id, count(*) FROM events GROUP BY id ORDER BY id")[1] == [("e1", 2), ("e2", 1)]


def test_an_fsspec_url_works_like_a_directory():
    url = "memory://livewatch-test-archive"
    store = open_store(url)
    writer = ArchiveWriter(store, "w")
    for i in range(3):
        writer.add(event_row(message(i), MessageSource(file="f", line=i), i, 0))
    writer.flush()
    assert verify(store).ok
    reader = ArchiveReader(store)
    assert [e.payload for e in reader.events(["r1"], 0, 1 << 50)] == [message(i) for i in range(3)]
    store.fs.rm(store.root, recursive=True)


def test_a_missing_archive_is_an_error_not_an_empty_archive(tmp_path):
    with pytest.raises(ArchiveError, match="no archive at"):
        open_store(str(tmp_path / "typo"), create=False)


# -- the embedded sink, backfill and the diff -------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_archive(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("demo-archive")
    recording = tmp / "demo.jsonl"
    recording.write_bytes(b"".join(line + b"\n" for line in demo_lines()) + b"{broken\n")
    sink = ArchiveSink(ArchiveWriter(open_store(str(tmp / "archive")), "demo", roll_bytes=20_000))
    EmbeddedRuntime(tmp / "out", archive=sink, reload_every_s=3600).run(read_jsonl(recording))
    return tmp / "archive", tmp / "out"


def test_the_sink_archives_what_the_replay_wrote(demo_archive):
    root, out = demo_archive
    assert len(files_of(root)) > 4  # rolled by size
    assert verify(open_store(str(root))).ok
    reader = ArchiveReader(open_store(str(root)))
    reader.views()
    _, alerts = reader.query("SELECT payload FROM alerts")
    assert sorted(bytes(a[0]).decode() for a in alerts) == sorted((out / "alerts.jsonl").read_text().splitlines())
    assert reader.query("SELECT count(*) FROM dead_letters")[1] == [(1,)]
    assert reader.query("SELECT count(*) FROM events")[1] == [(len(list(demo_lines())) + 1,)]


def test_a_backfill_with_the_same_rules_decides_the_same_and_shards_change_nothing(demo_archive, tmp_path):
    root, out = demo_archive
    one = backfill(str(root), None, 0, 1 << 50, tmp_path / "one", shards=1, pseudonym_key=DEV_KEY)
    three = backfill(str(root), None, 0, 1 << 50, tmp_path / "three", shards=3, pseudonym_key=DEV_KEY)
    assert one.diff.totals() == {} and three.diff.totals() == {}
    for name in ("alerts", "actions"):
        assert (tmp_path / "one" / f"{name}.jsonl").read_bytes() == (tmp_path / "three" / f"{name}.jsonl").read_bytes()
        assert sorted((tmp_path / "one" / f"{name}.jsonl").read_text().splitlines()) == sorted(
            (out / f"{name}.jsonl").read_text().splitlines()
        )


def test_the_diff_names_new_gone_and_changed_by_rule_and_ignores_the_ruleset_version():
    def alert(id_: str, rule: str, **extra: object) -> str:
        return json.dumps({"finding_id": id_, "rule_id": rule, "room_id": "r", "ruleset_version": "a", **extra})

    then = {"alerts": [alert("1", "x"), alert("2", "x"), alert("3", "y", score=0.5)], "actions": []}
    now = {"alerts": [alert("2", "x", ruleset_version="b"), alert("3", "y", score=0.9), alert("4", "z")], "actions": []}
    diff = diff_outputs(then, now)  # type: ignore[arg-type]
    assert {k: dict(v) for k, v in diff.by_rule.items()} == {
        "alerts:x": {"gone": 1},
        "alerts:y": {"changed": 1},
        "alerts:z": {"new": 1},
    }
    changed = next(i for i in diff.items if i["change"] == "changed")
    assert (changed["then"], changed["now"]) == ({"score": 0.5}, {"score": 0.9})


# -- retention and erasure --------------------------------------------------------------------------------


def test_retention_refuses_evidence_under_three_years_unless_told():
    with pytest.raises(ArchiveError, match="below the three years"):
        retention_of({"events": 30})
    assert retention_of({"dead_letters": 30})["dead_letters"] == 30
    assert retention_of({"events": 30}, allow_short=True)["events"] == 30


def test_prune_removes_old_files_and_the_chain_still_verifies(tmp_path):
    root = archive_of(tmp_path, [[message(1)], [message(2, ts=T0 + 10 * DAY)]])
    store = open_store(str(root))
    days = retention_of({"events": 5}, allow_short=True)
    dry = prune(store, days, date(2026, 2, 10), dry_run=True)
    assert len(dry.removed) == 1 and len(files_of(root)) == 2
    report = prune(store, days, date(2026, 2, 10))
    assert [f.day for f in report.removed] == ["2026-02-01"]
    assert [p.name for p in files_of(root)] == ["w-000000000002.parquet"]
    assert verify(store).ok
    assert load(store).removed[report.removed[0].path]["reason"] == "retention: events kept 5 days"


def test_forget_erases_one_account_everywhere_and_the_chain_still_verifies(tmp_path):
    root = archive_of(tmp_path, [[message(i) for i in range(6)]])
    store = open_store(str(root))
    report = forget(store, user_id="user-1", pseudonym=Pseudonymizer(DEV_KEY).user("user-1"), reference="REQ-7")
    assert (report.rows, report.files_rewritten) == (2, 1)
    assert verify(store).ok
    reader = ArchiveReader(store)
    reader.views()
    assert reader.query("SELECT count(*) FROM events WHERE subject = 'user-1'")[1] == [(0,)]
    assert reader.query("SELECT count(*) FROM events")[1] == [(4,)]
    reasons = [e.get("reason", "") for e in load(store).entries]
    assert any("REQ-7" in r for r in reasons) and not any("user-1" in r for r in reasons)


# -- reports and the command line -------------------------------------------------------------------------


def test_the_named_reports_print_tables_and_an_html_page_with_plots(demo_archive):
    root, _ = demo_archive
    reader = ArchiveReader(open_store(str(root)))
    timeline = run_report(reader, "room-timeline", 0, 1 << 50, room="demo-flood")
    assert timeline.tables[0].rows and any(r[1] == "action" for r in timeline.tables[1].rows)
    hits = run_report(reader, "rule-hits", 0, 1 << 50)
    assert ("2026-02-01", "claims.efficacy.disease_treatment", 7, 1, 7) in hits.tables[0].rows
    who = run_report(
        reader, "account-history", 0, 1 << 50, account="ring-00", pseudonym=Pseudonymizer(DEV_KEY).user("ring-00")
    )
    assert [len(t.rows) for t in who.tables] == [1, 2, 1]
    page = html_page(timeline)
    assert page.count("<svg") == 1 and "<script" not in page and "http" not in page.replace("http://www.w3.org", "")


def test_times_are_epoch_ms_days_or_iso():
    assert parse_time("1769904000000") == 1769904000000
    assert parse_time("2026-02-01") == 1769904000000
    assert parse_time("2026-02-01", end=True) == 1769904000000 + DAY - 1
    assert parse_time("2026-02-01T08:00:00+08:00") == 1769904000000
    with pytest.raises(ArchiveError, match="bad time"):
        parse_time("yesterday")


def test_the_command_line_says_what_is_wrong(tmp_path, capsys):
    assert main(["archive", "verify", "--dir", str(tmp_path / "nothing")]) == 1
    assert "no archive at" in capsys.readouterr().err
    assert main(["replay", "--from-archive", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 1
    assert "no archive at" in capsys.readouterr().err
    root = archive_of(tmp_path, [[message(1)]])
    args = [
        "replay",
        "--from-archive",
        str(root),
        "--between",
        "2026-02-02",
        "2026-02-01",
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(args) == 1
    assert re.search(r"--between: 2026-02-01 is before 2026-02-02", capsys.readouterr().err)
    assert main(["archive", "verify", "--dir", str(root)]) == 0
    files_of(root)[0].unlink()
    assert main(["archive", "verify", "--dir", str(root)]) == 1
    assert "FAILED: events/day=2026-02-01/platform=douyin/w-000000000001.parquet: removed" in capsys.readouterr().err
