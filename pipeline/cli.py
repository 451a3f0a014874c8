"""The ``livewatch`` command."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.engine import Outcome
from pipeline.errors import RuleSetError

if TYPE_CHECKING:
    from pipeline.settings import Settings

EXIT_OK, EXIT_FAILURE, EXIT_BAD_RULES, EXIT_BAD_CONFIG = 0, 1, 2, 3
CST = timezone(timedelta(hours=8))


def _clock(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, CST).strftime("%H:%M:%S")


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def print_feed(outcome: Outcome) -> None:
    """A readable live feed: one line per alert and action."""
    for f in outcome.findings:
        tag = {"shadow": "SHADOW", "review": "REVIEW"}.get(f.status, "ALERT ")
        who = f" ({f.subject.kind} {f.subject.id})" if f.subject.kind != "room" else ""
        print(f"{_clock(f.ts)}  {f.room_id:<14} {tag} [{f.severity:<8}] {f.rule_id}{who}: {f.summary}")
    for a in outcome.actions:
        until = f" for {_duration(a.duration_s)}" if a.duration_s else ""
        who = f" {a.subject.kind} {a.subject.id}" if a.subject.kind != "room" else ""
        print(
            f"{_clock(a.ts)}  {a.room_id:<14} ACTION {a.action.upper()}{who}{until} "
            f"(step {a.step + 1}, {a.appeal_ref}) — {a.message}"
        )
    for d in outcome.dead_letters:
        print(f"          {'':<14} REJECT {d.reason}: {d.detail} ({d.source})")


def _speed(args: argparse.Namespace) -> float | None:
    return None if args.fast or args.speed is None else args.speed


def _exit_on_sigterm() -> None:
    """A replay stopped by SIGTERM (``kill``, ``timeout``, a container's stop) exits through ``SystemExit``, so the
    runtime's ``finally`` flushes and closes its output files and the archive: they are buffered (flushed every
    ``FLUSH_EVERY_S`` while it runs), and only a hard kill now loses the last fraction of a second of records."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.embedded import EmbeddedRuntime
    from pipeline.simulator import demo_events, demo_lines

    _exit_on_sigterm()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    recording = out / "demo_recording.jsonl"
    recording.write_bytes(b"".join(line + b"\n" for line in demo_lines()))
    runtime = EmbeddedRuntime(
        out,
        rules_dir=args.rules,
        speed=_speed(args),
        on_outcome=print_feed,
        pseudonym_key=_settings().pseudonym_key.get_secret_value(),
        archive=_archive_sink(args, "demo"),
    )
    if args.metrics_port:
        runtime.metrics.serve(args.metrics_port, _settings().metrics_host)
    rooms = len({e.room_id for e in demo_events()})
    print(f"livewatch demo — {rooms} simulated rooms, ruleset {runtime.watcher.current.version}\n")
    from pipeline.embedded import read_jsonl

    stats = runtime.run(read_jsonl(recording))
    print(f"\n{stats.summary()}")
    print(
        f"wrote {out}/alerts.jsonl, actions.jsonl, dlq.jsonl; the input is {recording} "
        f"(try: livewatch replay {recording})"
    )
    return EXIT_OK


def _archive_sink(args: argparse.Namespace, writer: str) -> Any:
    """The archive sink of ``--archive DIR`` (pipeline/archive/), or None."""
    if not getattr(args, "archive", None):
        return None
    from pipeline.archive.cli import sink_for

    return sink_for(args.archive, writer)


def cmd_replay(args: argparse.Namespace) -> int:
    from pipeline.embedded import EmbeddedRuntime, Progress, count_lines, merge_jsonl, read_jsonl
    from pipeline.heap import settle_heap

    _exit_on_sigterm()

    if args.from_archive:  # a backfill over the evidence archive (docs/archive.md)
        from pipeline.archive.cli import cmd_backfill, guarded

        return int(guarded("replay --from-archive", cmd_backfill)(args))  # type: ignore[operator]
    if not args.file:
        print("livewatch replay: give a recording FILE, or --from-archive DIR", file=sys.stderr)
        return EXIT_FAILURE
    path = Path(args.file)
    if not path.is_file():
        print(f"livewatch replay: no such file: {path}", file=sys.stderr)
        return EXIT_FAILURE
    runtime = EmbeddedRuntime(
        Path(args.out),
        rules_dir=args.rules,
        speed=_speed(args),
        on_outcome=None if args.quiet else print_feed,
        pseudonym_key=_settings().pseudonym_key.get_secret_value(),
        archive=_archive_sink(args, "replay"),
    )
    if args.metrics_port:
        runtime.metrics.serve(args.metrics_port, _settings().metrics_host)
    merged = [Path(m) for m in args.merge or ()]
    for extra in merged:
        if not extra.is_file():
            print(f"livewatch replay: no such file: {extra}", file=sys.stderr)
            return EXIT_FAILURE
    progress = None if args.no_progress else Progress(sum(count_lines(p) for p in (path, *merged)))
    settle_heap()  # the rules and models loaded above are kept to the end
    stats = runtime.run(merge_jsonl(path, *merged) if merged else read_jsonl(path), progress=progress)
    print(stats.summary())
    print(f"wrote {args.out}/alerts.jsonl, actions.jsonl, dlq.jsonl")
    return EXIT_OK


def cmd_rules_check(args: argparse.Namespace) -> int:
    from pipeline.ruleset import load_ruleset

    ruleset = load_ruleset(args.dir)  # a RuleSetError is reported by main() with exit code 2
    by_detector = ", ".join(
        f"{name}: {len(d.all_rules)} rules" + ("" if d in ruleset.detectors else " (all off)")
        for name, d in sorted(ruleset.configured.items())
    )
    print(f"OK: ruleset {ruleset.version} in {ruleset.directory} ({by_detector}; every inline example holds)")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from schemas.export import all_schemas

    print(json.dumps(all_schemas(), ensure_ascii=False, indent=2))
    return EXIT_OK


def _settings(**overrides: object) -> Settings:
    from pipeline.settings import Settings

    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**given)  # the environment fills in what the command line leaves out


def cmd_worker(args: argparse.Namespace) -> int:
    from pipeline.kafka.worker import run_worker

    settings = _settings(
        broker=args.broker,
        rules_dir=args.rules,
        datadir=args.datadir,
        metrics_port=args.metrics_port,
        web_port=args.web_port,
        partitions=args.partitions,
        loglevel=args.loglevel,
    )
    run_worker(settings)
    return EXIT_OK


def cmd_publish(args: argparse.Namespace) -> int:
    import asyncio

    from pipeline.embedded import read_jsonl
    from pipeline.kafka.recording import publish

    path = Path(args.file)
    if not path.is_file():
        print(f"livewatch publish: no such file: {path}", file=sys.stderr)
        return EXIT_FAILURE
    settings = _settings(broker=args.broker, partitions=args.partitions)
    lines = ((src.line or 0, raw) for src, raw in read_jsonl(path))
    sent = asyncio.run(publish(settings, lines, speed=_speed(args)))
    print(f"published {sent:,} messages from {path} to {settings.broker}")
    return EXIT_OK


def cmd_record(args: argparse.Namespace) -> int:
    import asyncio

    from pipeline.kafka.recording import record
    from pipeline.kafka.topics import INPUT_NAMES

    settings = _settings(broker=args.broker)
    topics = args.topics.split(",") if args.topics else list(INPUT_NAMES)
    n = asyncio.run(record(settings, Path(args.out), topics, idle_s=args.idle, limit=args.limit))
    print(f"recorded {n:,} messages from {', '.join(topics)} to {args.out}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from pipeline.archive.cli import add_archive_commands, add_replay_archive_options, add_sink_option
    from pipeline.console.cli import add_console_commands

    p = argparse.ArgumentParser(prog="livewatch", description="Real-time compliance monitor for live-commerce streams")
    sub = p.add_subparsers(dest="command", required=True)

    def pacing(sp: argparse.ArgumentParser, default_speed: float | None) -> None:
        g = sp.add_mutually_exclusive_group()
        g.add_argument(
            "--speed", type=float, default=default_speed, help="replay at this multiple of real (event) time"
        )
        g.add_argument("--fast", action="store_true", help="as fast as possible (same output)")
        sp.add_argument(
            "--rules",
            type=Path,
            default=None,
            help="rules directory (default: $LIVEWATCH_RULES_DIR, else the shipped rules/)",
        )
        sp.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus /metrics on 127.0.0.1:PORT")

    demo = sub.add_parser("demo", help="watch livewatch police nine simulated rooms (no broker)")
    pacing(demo, default_speed=60.0)
    demo.add_argument("--out", default="out/demo", help="output directory (default out/demo)")
    add_sink_option(demo)
    demo.set_defaults(func=cmd_demo)

    replay = sub.add_parser("replay", help="replay a recorded JSONL stream through the detectors")
    replay.add_argument("file", nargs="?", help="recording in the wire format, one event per line")
    pacing(replay, default_speed=None)
    replay.add_argument("--out", default="out/replay", help="output directory (default out/replay)")
    replay.add_argument(
        "--merge",
        action="append",
        metavar="FILE",
        help="more input merged in by event time, e.g. the console's overturns.jsonl (repeatable)",
    )
    replay.add_argument("--quiet", action="store_true", help="no live feed, only progress and the summary")
    replay.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    add_sink_option(replay)
    add_replay_archive_options(replay)
    replay.set_defaults(func=cmd_replay)

    rules = sub.add_parser("rules", help="rule files")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    check = rules_sub.add_parser("check", help="validate a rules directory and run its inline examples")
    check.add_argument("dir", nargs="?", type=Path, default=None)
    check.set_defaults(func=cmd_rules_check)

    worker = sub.add_parser("worker", help="run a Kafka worker (start several: they share one consumer group)")
    worker.add_argument("--broker", help="kafka://host:port (default $LIVEWATCH_BROKER or kafka://127.0.0.1:19092)")
    worker.add_argument("--rules", type=Path, default=None, help="rules directory, hot-reloaded")
    worker.add_argument("--datadir", type=Path, default=None, help="this worker's data directory (one per worker)")
    worker.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port")
    worker.add_argument(
        "--web-port",
        "--workers-port",
        dest="web_port",
        type=int,
        default=None,
        help="enable Faust's web server on 127.0.0.1:PORT (off by default: it exposes tables)",
    )
    worker.add_argument("--partitions", type=int, default=None, help="partitions of topics it creates")
    worker.add_argument("--loglevel", default=None, help="debug, info, warning (default info)")
    worker.set_defaults(func=cmd_worker)

    pub = sub.add_parser("publish", help="publish a recording into the input topics (routed by kind)")
    pub.add_argument("file")
    pub.add_argument("--broker")
    pub.add_argument("--partitions", type=int, default=None, help="partitions of topics it creates")
    g = pub.add_mutually_exclusive_group()
    g.add_argument("--speed", type=float, default=None, help="pace by event time at this multiple")
    g.add_argument("--fast", action="store_true", help="as fast as possible (default)")
    pub.set_defaults(func=cmd_publish)

    rec = sub.add_parser("record", help="dump topics into a recording (sorted by event time) for analysts")
    rec.add_argument("--out", required=True)
    rec.add_argument("--broker")
    rec.add_argument("--topics", default=None, help="comma-separated (default: every input topic)")
    rec.add_argument("--idle", type=float, default=3.0, help="stop after this many seconds without a message")
    rec.add_argument("--limit", type=int, default=None, help="stop after this many messages")
    rec.set_defaults(func=cmd_record)

    add_archive_commands(sub)
    add_console_commands(sub)

    schema = sub.add_parser("schema", help="print the JSON Schema of every event, finding, action and dead letter")
    schema.set_defaults(func=cmd_schema)
    return p


class _ConnectFailure(logging.Handler):
    """Keeps aiokafka's last "Unable connect" reason (a refused password, an untrusted certificate): the
    exception it raises afterwards only says it could not bootstrap."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.reason = ""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Unable connect to"):
            self.reason = message


def _env_name(loc: tuple[int | str, ...]) -> str:
    """The variable of a settings field ("sasl_mechanism" → "LIVEWATCH_SASL_MECHANISM"); "" for the model."""
    return f"LIVEWATCH_{str(loc[0]).upper()}" if loc else ""


def _describe_connection() -> str:
    from pipeline.settings import Settings

    s = Settings()  # already loaded once by the command: it is valid
    how: str = s.security_protocol
    if how.startswith("SASL_"):
        how += f", {s.sasl_mechanism} as user {s.sasl_username!r}"
    return f"{s.broker} ({how})"


def main(argv: Sequence[str] | None = None) -> int:
    from pydantic import ValidationError

    args = build_parser().parse_args(argv)
    connect_failure = _ConnectFailure()
    logging.getLogger("aiokafka").addHandler(connect_failure)
    try:
        return int(args.func(args))
    except RuleSetError as e:  # any command started with bad rules: say where, exit 2, no traceback
        print(str(e), file=sys.stderr)
        return EXIT_BAD_RULES
    except ValidationError as e:  # bad LIVEWATCH_* settings: which and why (never the value: it may be a secret)
        problems = "; ".join(
            ": ".join(filter(None, (_env_name(err["loc"]), err["msg"].removeprefix("Value error, "))))
            for err in e.errors()
        )
        print(f"livewatch {args.command}: bad configuration: {problems}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except Exception as e:
        from aiokafka.errors import KafkaConnectionError

        if not isinstance(e, KafkaConnectionError):
            raise
        reason = connect_failure.reason or str(e)
        print(f"livewatch {args.command}: cannot connect to {_describe_connection()}: {reason}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        logging.getLogger("aiokafka").removeHandler(connect_failure)


def entry() -> int:
    """The ``livewatch`` command: ``main`` in a process of its own (which may tune its heap, pipeline/heap.py)."""
    from pipeline.heap import own_process

    own_process()
    return main()


if __name__ == "__main__":
    sys.exit(entry())
