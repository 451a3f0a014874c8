"""The archive's commands, added to ``livewatch`` by pipeline/cli.py: ``archive`` (run the Kafka archiver),
``archive verify|query|prune|forget``, ``replay --from-archive`` (backfill) and ``--archive DIR`` on
``demo``/``replay`` (the embedded runtime's sink). Kept here so the main CLI only wires them in."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.archive.storage import ArchiveError

if TYPE_CHECKING:
    from pipeline.archive.sink import ArchiveSink
    from pipeline.settings import Settings

EXIT_OK, EXIT_FAILURE, EXIT_BAD_CONFIG = 0, 1, 3
EVER = (946_684_800_000, 4_102_444_799_999)  # 2000-01-01 .. 2099-12-31


def parse_time(text: str, *, end: bool = False) -> int:
    """Epoch milliseconds from "1769947200000", "2026-02-01" (the whole UTC day: its start, or its end for an
    upper bound), or ISO 8601 "2026-02-01T20:00:00+08:00" (no offset: UTC)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            return int(((day + timedelta(days=1)) if end else day).timestamp() * 1000) - (1 if end else 0)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ArchiveError(
            f"bad time {text!r}: give epoch milliseconds, a day (2026-02-01) or ISO 8601 (2026-02-01T20:00+08:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _between(values: list[str] | None) -> tuple[int, int]:
    if not values:
        return EVER
    start, end = parse_time(values[0]), parse_time(values[1], end=True)
    if end < start:
        raise ArchiveError(f"--between: {values[1]} is before {values[0]}")
    return start, end


def _settings(archive_url: str | None = None) -> Settings:
    from pipeline.settings import Settings

    given: dict[str, Any] = {"archive_url": archive_url} if archive_url else {}
    return Settings(**given)


def sink_for(url: str, writer: str) -> ArchiveSink:
    """The embedded runtime's sink into the archive at ``url`` (``--archive`` of demo and replay)."""
    from pipeline.archive.sink import ArchiveSink
    from pipeline.archive.storage import open_store
    from pipeline.archive.writer import ArchiveWriter

    s = _settings(url)
    writer_ = ArchiveWriter(
        open_store(s.archive_url), writer, roll_bytes=s.archive_roll_bytes, roll_seconds=s.archive_roll_seconds
    )
    return ArchiveSink(writer_)


# -- commands ------------------------------------------------------------------------------------------


def cmd_archive_run(args: argparse.Namespace) -> int:
    from pipeline.archive.storage import open_store
    from pipeline.archive.writer import ArchiveWriter
    from pipeline.kafka.archiver import group_id, run_archiver
    from pipeline.settings import Settings

    overrides = {"broker": args.broker, "archive_url": args.dir, "archive_writer": args.writer}
    s = Settings(**{k: v for k, v in overrides.items() if v is not None})
    writer = ArchiveWriter(
        open_store(s.archive_url),
        s.archive_writer,
        roll_bytes=args.roll_bytes or s.archive_roll_bytes,
        roll_seconds=args.roll_seconds or s.archive_roll_seconds,
    )
    print(f"archiving {s.broker} (group {group_id(s)}) into {s.archive_url} as {s.archive_writer!r}", flush=True)

    def flushed(stats: object) -> None:
        print(f"  flushed {stats}", flush=True)

    try:
        stats = run_archiver(s, writer, idle_exit_s=args.exit_when_idle, on_flush=flushed)
    except OSError as e:  # storage full, gone, refused: nothing unwritten was committed to Kafka
        raise ArchiveError(
            f"cannot write to {s.archive_url}: {e}. Offsets are committed only after a flush, so the records "
            "not yet written are read again when the archiver is started again"
        ) from None
    print(
        f"archived {stats.records:,} records in {stats.files} files ({stats.bytes:,} bytes compressed, "
        f"{stats.payload_bytes:,} bytes of messages)"
    )
    return EXIT_OK


def cmd_archive_verify(args: argparse.Namespace) -> int:
    from pipeline.archive.manifest import verify
    from pipeline.archive.storage import open_store

    s = _settings(args.dir)
    from_day = date.fromisoformat(args.from_day).isoformat() if args.from_day else None
    report = verify(open_store(s.archive_url, create=False), from_day=from_day)
    for writer, (seq, head) in sorted(report.heads.items()):
        print(f"chain {writer}: {seq} entries, head {head}")
    scope = f" of days ≥ {from_day}" if from_day else ""
    if report.ok:
        print(
            f"OK: {report.entries} manifest entries chained; {report.files_checked} files{scope} "
            f"({report.bytes_checked:,} bytes) match their digests"
        )
        return EXIT_OK
    first = report.problems[0]
    print(f"FAILED: {first}", file=sys.stderr)
    for p in report.problems[1:20]:
        print(f"  also: {p}", file=sys.stderr)
    if len(report.problems) > 20:
        print(f"  … {len(report.problems) - 20} more", file=sys.stderr)
    return EXIT_FAILURE


def cmd_archive_query(args: argparse.Namespace) -> int:
    from pipeline.archive.query import format_report, html_page, run_report
    from pipeline.archive.reader import ArchiveReader
    from pipeline.archive.storage import open_store
    from pipeline.privacy import Pseudonymizer

    s = _settings(args.dir)
    start, end = _between(args.between)
    pseudonym = Pseudonymizer(s.pseudonym_key.get_secret_value()).user(args.account) if args.account else None
    reader = ArchiveReader(open_store(s.archive_url, create=False))
    try:
        report = run_report(reader, args.report, start, end, room=args.room, account=args.account, pseudonym=pseudonym)
    except ValueError as e:
        print(f"livewatch archive query: {e}", file=sys.stderr)
        return EXIT_FAILURE
    print(format_report(report))
    if args.html:
        Path(args.html).parent.mkdir(parents=True, exist_ok=True)
        Path(args.html).write_text(html_page(report), encoding="utf-8")
        print(f"\nwrote {args.html}")
    return EXIT_OK


def cmd_archive_prune(args: argparse.Namespace) -> int:
    from pipeline.archive.retention import prune, retention_of
    from pipeline.archive.storage import open_store

    s = _settings(args.dir)
    days = retention_of(s.archive_retention_days, allow_short=args.allow_short_retention)
    today = date.fromisoformat(args.today) if args.today else datetime.now(UTC).date()
    report = prune(open_store(s.archive_url, create=False), days, today, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"retention {json.dumps(days)}: {verb} {len(report.removed)} files")
    for f in report.removed[:50]:
        print(f"  {f.path} ({f.rows} rows)")
    return EXIT_OK


def cmd_archive_forget(args: argparse.Namespace) -> int:
    from pipeline.archive.retention import forget
    from pipeline.archive.storage import open_store
    from pipeline.privacy import Pseudonymizer

    s = _settings(args.dir)
    pseudonym = Pseudonymizer(s.pseudonym_key.get_secret_value()).user(args.account)
    report = forget(
        open_store(s.archive_url, create=False), user_id=args.account, pseudonym=pseudonym, reference=args.reference
    )
    print(f"erased {report.rows} rows of account {pseudonym} (pseudonym) from {report.files_rewritten} files")
    return EXIT_OK


def cmd_backfill(args: argparse.Namespace) -> int:
    from pipeline.archive.backfill import backfill

    s = _settings(args.from_archive)
    start, end = _between(args.between)
    report = backfill(
        s.archive_url,
        args.room or None,
        start,
        end,
        Path(args.out),
        rules_dir=args.rules,
        shards=args.shards,
        pseudonym_key=s.pseudonym_key.get_secret_value(),
    )
    print(report.summary())
    print((Path(args.out) / "diff.md").read_text(encoding="utf-8"), end="")
    print(f"wrote {args.out}/alerts.jsonl, actions.jsonl, dlq.jsonl, diff.json, diff.md")
    return EXIT_OK


def guarded(command: str, func: object) -> object:
    """An archive command whose ArchiveError is one line on stderr and exit 1 (bad input, never a traceback)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))  # type: ignore[operator]
        except ArchiveError as e:
            print(f"livewatch {command}: {e}", file=sys.stderr)
            return EXIT_FAILURE

    return run


# -- parsers ---------------------------------------------------------------------------------------------


def add_archive_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    arch = sub.add_parser(
        "archive",
        help="the evidence archive: run the Kafka archiver (default), or verify / query / prune / forget",
        description="Without a subcommand: archive every input topic, dead letters, alerts and actions from Kafka "
        "(consumer group <app_id>-archive) into Parquet files with a hash-chained manifest (docs/archive.md).",
    )
    arch.add_argument("--dir", default=None, help="archive directory or fsspec URL (default $LIVEWATCH_ARCHIVE_URL)")
    arch.add_argument("--broker", default=None)
    arch.add_argument("--writer", default=None, help="this archiver's name (default $LIVEWATCH_ARCHIVE_WRITER)")
    arch.add_argument("--roll-bytes", type=int, default=None, help="roll files at this many buffered bytes")
    arch.add_argument("--roll-seconds", type=float, default=None, help="roll files at least this often")
    arch.add_argument("--exit-when-idle", type=float, default=None, help="stop after this many seconds without records")
    arch.set_defaults(func=guarded("archive", cmd_archive_run))
    verbs = arch.add_subparsers(dest="archive_command")

    v = verbs.add_parser("verify", help="recompute the manifest's hash chain and every file's digest")
    v.add_argument("--dir", default=None)
    v.add_argument(
        "--from", dest="from_day", default=None, help="re-hash files of this day (YYYY-MM-DD) and later only"
    )
    v.set_defaults(func=guarded("archive verify", cmd_archive_verify))

    q = verbs.add_parser("query", help="a named report: room-timeline, rule-hits, account-history")
    q.add_argument("report", choices=["room-timeline", "rule-hits", "account-history"])
    q.add_argument("--dir", default=None)
    q.add_argument("--room", default=None)
    q.add_argument("--account", default=None, help="the account's user id (alerts are matched by its pseudonym)")
    q.add_argument("--between", nargs=2, metavar=("T1", "T2"), default=None, help="time range (default: all)")
    q.add_argument("--html", default=None, help="also write a self-contained HTML page with plots here")
    q.set_defaults(func=guarded("archive query", cmd_archive_query))

    p = verbs.add_parser("prune", help="delete files past their data class's retention (chained as removals)")
    p.add_argument("--dir", default=None)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--today", default=None, help="prune as of this day (default: today, UTC)")
    p.add_argument("--allow-short-retention", action="store_true", help="accept evidence kept under three years")
    p.set_defaults(func=guarded("archive prune", cmd_archive_prune))

    f = verbs.add_parser("forget", help="erase one account's rows (personal-data deletion), chained as rewrites")
    f.add_argument("--dir", default=None)
    f.add_argument("--account", required=True, help="the account's user id")
    f.add_argument("--reference", required=True, help="the erasure request's reference (recorded in the manifest)")
    f.set_defaults(func=guarded("archive forget", cmd_archive_forget))


def add_replay_archive_options(replay: argparse.ArgumentParser) -> None:
    replay.add_argument(
        "--from-archive", default=None, metavar="DIR", help="backfill: re-run a stored range instead of a file"
    )
    replay.add_argument("--room", action="append", default=None, help="with --from-archive: a room (repeatable)")
    replay.add_argument("--between", nargs=2, metavar=("T1", "T2"), default=None, help="with --from-archive")
    replay.add_argument("--shards", type=int, default=1, help="with --from-archive: processes, rooms split among them")


def add_sink_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--archive", default=None, metavar="DIR", help="also archive inputs and outputs (docs/archive.md)"
    )
