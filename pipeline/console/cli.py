"""``livewatch console`` (serve, load, user) and ``livewatch labels export``."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURE = 0, 1


def _settings() -> Any:
    from pipeline.settings import Settings

    return Settings()


def _store(args: argparse.Namespace) -> Any:
    from pipeline.console.store import Store

    return Store(getattr(args, "db", None) or _settings().console_db)


def _materialiser(store: Any) -> Any:
    from pipeline.console.materialise import Materialiser
    from pipeline.privacy import Pseudonymizer

    return Materialiser(store, Pseudonymizer(_settings().pseudonym_key.get_secret_value()))


def cmd_console(args: argparse.Namespace) -> int:
    import waitress

    from pipeline.console.decisions import JsonlSink, KafkaSink
    from pipeline.console.materialise import KafkaFollower, load_directory
    from pipeline.console.web import create_app

    settings = _settings()
    store = _store(args)
    follower = None
    if args.kafka:
        sink: Any = KafkaSink(settings)
        follower = KafkaFollower(_materialiser(store), settings)
        follower.start()
        source = f"Kafka {settings.broker}"
    else:
        directory = Path(args.source_dir)
        if not (directory / "alerts.jsonl").is_file():
            print(
                f"livewatch console: {directory} has no alerts.jsonl — run `livewatch demo` (or `livewatch replay "
                "FILE`, with --from its --out directory) first, or use --kafka",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        counts = load_directory(_materialiser(store), directory, args.events)
        print(f"loaded {directory}: {counts.summary()}", flush=True)
        for problem in counts.rejected[:10]:
            print(f"  rejected {problem}", file=sys.stderr)
        sink = JsonlSink(directory)
        source = str(directory)
    host = args.host or settings.console_host
    port = settings.console_port if args.port is None else args.port
    app = create_app(store, sink, session_minutes=settings.console_session_minutes, source=source)
    print(f"livewatch console on http://{host}:{port}/ (store {store.engine.url.render_as_string()})", flush=True)
    try:
        waitress.serve(app, host=host, port=port, threads=8, ident="livewatch-console")
    finally:
        if follower is not None:
            follower.stop()
        sink.close()
        store.close()
    return EXIT_OK


def cmd_load(args: argparse.Namespace) -> int:
    from pipeline.console.materialise import load_directory

    store = _store(args)
    counts = load_directory(_materialiser(store), Path(args.dir), args.events)
    print(f"loaded {args.dir}: {counts.summary()}")
    for problem in counts.rejected:
        print(f"  rejected {problem}", file=sys.stderr)
    return EXIT_OK


def cmd_user_add(args: argparse.Namespace) -> int:
    from pipeline.console.users import add_user

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("livewatch console user add: the passwords differ", file=sys.stderr)
            return EXIT_FAILURE
    try:
        add_user(_store(args), args.name, password, args.role)
    except ValueError as e:
        print(f"livewatch console user add: {e}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"user {args.name} ({args.role}) saved")
    return EXIT_OK


def cmd_labels_export(args: argparse.Namespace) -> int:
    from pipeline.console.labels import export_labels

    counts = export_labels(_store(args), Path(args.out))
    for what, n in sorted(counts.items()):
        print(f"{n:6d}  {what}")
    print(f"wrote {args.out}/claims_reviewed.jsonl and floods_reviewed.jsonl")
    return EXIT_OK


def add_console_commands(sub: Any) -> None:
    db_help = "the store's URL (default $LIVEWATCH_CONSOLE_DB, sqlite:///out/console/console.db)"
    console = sub.add_parser("console", help="the review console: queue, evidence, decisions, appeals (a web page)")
    console.add_argument("--from", dest="source_dir", default="out/demo", help="a demo/replay output directory")
    console.add_argument("--events", type=Path, default=None, help="the recording, for the rooms' context")
    console.add_argument("--kafka", action="store_true", help="follow the topics and publish to live.reviews")
    console.add_argument("--db", default=None, help=db_help)
    console.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    console.add_argument("--port", type=int, default=None, help="port (default 8700)")
    console.set_defaults(func=cmd_console)
    csub = console.add_subparsers(dest="console_command")

    load = csub.add_parser("load", help="materialise an output directory into the store, and exit")
    load.add_argument("dir")
    load.add_argument("--events", type=Path, default=None, help="the recording, for the rooms' context")
    load.add_argument("--db", default=argparse.SUPPRESS, help=db_help)
    load.set_defaults(func=cmd_load)

    user = csub.add_parser("user", help="console accounts")
    usub = user.add_subparsers(dest="user_command", required=True)
    add = usub.add_parser("add", help="add a user, or change one's password and role")
    add.add_argument("name")
    add.add_argument("--role", choices=("viewer", "reviewer", "lead"), required=True)
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--db", default=argparse.SUPPRESS, help=db_help)
    add.set_defaults(func=cmd_user_add)

    labels = sub.add_parser("labels", help="reviewers' decisions as training examples")
    lsub = labels.add_subparsers(dest="labels_command", required=True)
    export = lsub.add_parser("export", help="confirmed = positive, dismissed = negative, per training script")
    export.add_argument("--db", default=None, help=db_help)
    export.add_argument("--out", default="out/labels", help="output directory (default out/labels)")
    export.set_defaults(func=cmd_labels_export)
