"""The CLI: the demo tells its story, schemas export, replay writes its files."""

import json
from pathlib import Path

from pipeline.cli import main
from pipeline.simulator import demo_events
from schemas.events import EVENT_KINDS


def test_demo_shows_a_clean_room_a_warned_room_and_a_suspended_room(tmp_path: Path, capsys):
    assert main(["demo", "--fast", "--out", str(tmp_path)]) == 0
    feed = capsys.readouterr().out
    actions = [json.loads(line) for line in (tmp_path / "actions.jsonl").read_text().splitlines()]
    by_room: dict[str, list[str]] = {}
    for a in actions:
        by_room.setdefault(a["room_id"], []).append(a["action"])
    assert "demo-clean" not in by_room
    assert by_room["demo-claims"][0] == "warn" and "suspend" not in by_room["demo-claims"]
    assert by_room["demo-escalate"][0] == "warn" and by_room["demo-escalate"][-1] == "suspend"
    assert "ACTION SUSPEND" in feed and "ALERT" in feed
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert all(a["room_id"] != "demo-clean" for a in alerts)


def test_demo_recording_replays_to_the_same_output(tmp_path: Path):
    assert main(["demo", "--fast", "--out", str(tmp_path / "demo")]) == 0
    assert (
        main(
            [
                "replay",
                str(tmp_path / "demo" / "demo_recording.jsonl"),
                "--quiet",
                "--no-progress",
                "--out",
                str(tmp_path / "replay"),
            ]
        )
        == 0
    )
    for name in ("alerts.jsonl", "actions.jsonl"):
        assert (tmp_path / "demo" / name).read_bytes() == (tmp_path / "replay" / name).read_bytes()


def test_the_simulator_is_deterministic_and_ordered_by_event_time():
    a, b = demo_events(), demo_events()
    assert a == b and [e.ts for e in a] == sorted(e.ts for e in a)


def test_schema_command_prints_every_model(capsys):
    assert main(["schema"]) == 0
    schemas = json.loads(capsys.readouterr().out)
    assert {"Event", "Finding", "EnforcementAction", "DeadLetter"} <= set(schemas)
    assert {
        m["properties"]["kind"]["const"]
        for m in schemas["Event"]["$defs"].values()
        if "const" in m.get("properties", {}).get("kind", {})  # an event (a Subject's kind is an enum)
    } == set(EVENT_KINDS)


def test_replay_of_a_missing_file_fails_clearly(tmp_path: Path, capsys):
    assert main(["replay", str(tmp_path / "nope.jsonl")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_replay_with_a_bad_rules_directory_says_where_and_exits_2(tmp_path: Path, capsys):
    recording = tmp_path / "r.jsonl"
    recording.write_text("{}\n")
    (tmp_path / "rules").mkdir()
    assert main(["replay", str(recording), "--rules", str(tmp_path / "rules"), "--out", str(tmp_path / "o")]) == 2
    assert "ruleset.yaml" in capsys.readouterr().err


def test_a_replay_stopped_by_sigterm_flushes_and_closes_its_outputs(tmp_path: Path):
    """The output files are buffered; SIGTERM (``kill``, ``timeout``) ends a replay through its ``finally``, so what
    it decided is in them, whole lines only, and it exits 143. Paced at event time, so the signal comes mid-run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from pipeline.simulator import demo_lines

    (tmp_path / "demo.jsonl").write_bytes(b"".join(line + b"\n" for line in demo_lines()))
    out = tmp_path / "out"
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "replay", str(tmp_path / "demo.jsonl"), "--out", str(out)]
        + ["--speed", "5", "--quiet", "--no-progress"],
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not ((out / "alerts.jsonl").exists() and (out / "alerts.jsonl").stat().st_size) and proc.poll() is None:
        assert time.monotonic() < deadline, "no alert flushed within a minute"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr.decode()[-2000:]
    alerts = (out / "alerts.jsonl").read_text(encoding="utf-8").splitlines()
    assert alerts and all(json.loads(line)["finding_id"] for line in alerts)
