"""Named analyst reports over the archive (DuckDB), as tables and, for ``--html``, one self-contained page with
inline SVG plots (no script, no external file: it can be attached to a case as it is).

- ``room-timeline``: one room's events per minute by kind, and every alert and action in order;
- ``rule-hits``: findings per rule per day, with the rooms they were in;
- ``account-history``: one account across rooms — its messages per room and day, alerts naming its
  pseudonym, actions on it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.archive.reader import ArchiveReader

REPORTS = ("room-timeline", "rule-hits", "account-history")


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[tuple[Any, ...]]


@dataclass
class Plot:
    title: str
    series: dict[str, list[tuple[float, float]]]  # name → (x = epoch ms, y)
    kind: str = "bars"  # "bars" | "lines"
    marks: list[tuple[float, str]] = field(default_factory=list)  # vertical markers (x, label)


@dataclass
class Report:
    name: str
    title: str
    tables: list[Table] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)


def _iso(ms: int) -> str:
    ms = min(max(ms, 0), 4_102_444_799_999)  # an open range's bounds are printed as 1970 / 2099
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def room_timeline(reader: ArchiveReader, room: str, start_ms: int, end_ms: int) -> Report:
    for data_class in ("events", "alerts", "actions"):
        reader.view(data_class, ts_range=(start_ms, end_ms), rooms=[room])
    where = "room_id = ? AND ts BETWEEN ? AND ?"
    params = (room, start_ms, end_ms)
    cols, per_minute = reader.query(
        f"SELECT (ts // 60000) * 60000 AS minute, kind, count(*) FROM events WHERE {where} GROUP BY ALL ORDER BY 1, 2",
        params,
    )
    _, decided = reader.query(
        f"""SELECT ts, 'alert' AS what, rule_id, kind, subject, json_extract_string(decode(payload), '$.summary')
            FROM alerts WHERE {where}
            UNION ALL
            SELECT ts, 'action', rule_id, kind, subject, json_extract_string(decode(payload), '$.message')
            FROM actions WHERE {where}
            ORDER BY 1, 2, 3""",
        params * 2,
    )
    report = Report("room-timeline", f"Room {room}: {_iso(start_ms)} – {_iso(end_ms)} UTC")
    report.tables.append(
        Table(
            "events per minute, by kind",
            ["minute (UTC)", "kind", "events"],
            [(_iso(m), k, n) for m, k, n in per_minute],
        )
    )
    report.tables.append(
        Table(
            "alerts and actions",
            ["time (UTC)", "what", "rule", "detector / action", "subject", "summary"],
            [(_iso(r[0]), *r[1:]) for r in decided],
        )
    )
    series: dict[str, list[tuple[float, float]]] = {}
    for minute, kind, n in per_minute:
        series.setdefault(kind or "(not an event)", []).append((minute, n))
    marks = [(float(r[0]), f"{r[1]} {r[2]}") for r in decided]
    report.plots.append(Plot("events per minute, alerts and actions marked", series, "bars", marks))
    return report


def rule_hits(reader: ArchiveReader, start_ms: int, end_ms: int) -> Report:
    reader.view("alerts", ts_range=(start_ms, end_ms))
    _, rows = reader.query(
        """SELECT day, rule_id, count(*) AS findings, count(DISTINCT room_id) AS rooms,
                  count(*) FILTER (WHERE json_extract_string(decode(payload), '$.status') = 'live') AS live
           FROM alerts WHERE ts BETWEEN ? AND ? GROUP BY ALL ORDER BY day, rule_id""",
        (start_ms, end_ms),
    )
    report = Report("rule-hits", f"Findings per rule per day: {_iso(start_ms)} – {_iso(end_ms)} UTC")
    report.tables.append(Table("findings per rule per day", ["day", "rule", "findings", "rooms", "live"], rows))
    series: dict[str, list[tuple[float, float]]] = {}
    for day, rule, n, *_ in rows:
        x = datetime.strptime(str(day), "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000
        series.setdefault(rule, []).append((x, n))
    report.plots.append(Plot("findings per day, by rule", series, "lines"))
    return report


def account_history(reader: ArchiveReader, user_id: str, pseudonym: str, start_ms: int, end_ms: int) -> Report:
    reader.view("events", ts_range=(start_ms, end_ms), subjects=[user_id])
    reader.view("actions", ts_range=(start_ms, end_ms), subjects=[user_id])
    reader.view("alerts", ts_range=(start_ms, end_ms))  # its pseudonym may be in a campaign's account list
    _, messages = reader.query(
        """SELECT day, room_id, kind, count(*), min(ts), max(ts) FROM events
           WHERE subject = ? AND ts BETWEEN ? AND ? GROUP BY ALL ORDER BY day, room_id, kind""",
        (user_id, start_ms, end_ms),
    )
    _, alerts = reader.query(
        """SELECT ts, room_id, rule_id, json_extract_string(decode(payload), '$.summary') FROM alerts
           WHERE (subject = ? OR contains(decode(payload), ?)) AND ts BETWEEN ? AND ? ORDER BY ts""",
        (pseudonym, f'"{pseudonym}"', start_ms, end_ms),
    )
    _, actions = reader.query(
        """SELECT ts, room_id, kind, rule_id, json_extract_string(decode(payload), '$.message') FROM actions
           WHERE subject = ? AND ts BETWEEN ? AND ? ORDER BY ts""",
        (user_id, start_ms, end_ms),
    )
    report = Report("account-history", f"Account {pseudonym} (pseudonym) across rooms")
    report.tables.append(
        Table(
            "messages per room and day",
            ["day", "room", "kind", "messages", "first (UTC)", "last (UTC)"],
            [(*r[:4], _iso(r[4]), _iso(r[5])) for r in messages],
        )
    )
    report.tables.append(
        Table("alerts naming it", ["time (UTC)", "room", "rule", "summary"], [(_iso(r[0]), *r[1:]) for r in alerts])
    )
    report.tables.append(
        Table(
            "actions on it",
            ["time (UTC)", "room", "action", "rule", "message"],
            [(_iso(r[0]), *r[1:]) for r in actions],
        )
    )
    per_room: dict[str, list[tuple[float, float]]] = {}
    for day, room, _kind, n, *_ in messages:
        x = datetime.strptime(str(day), "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000
        per_room.setdefault(room, []).append((x, n))
    report.plots.append(Plot("messages per day, by room", per_room, "bars"))
    return report


# -- output ------------------------------------------------------------------------------------------


def format_table(table: Table, max_width: int = 60) -> str:
    def cell(v: Any) -> str:
        s = "" if v is None else str(v)
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    cells = [[cell(v) for v in row] for row in table.rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(table.columns)]
    lines = [f"{table.title} ({len(table.rows)} rows)"]
    lines.append("  ".join(c.ljust(w) for c, w in zip(table.columns, widths, strict=True)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def format_report(report: Report) -> str:
    return "\n\n".join([report.title, *(format_table(t) for t in report.tables)])


PALETTE = ("#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00", "#b82e2e")


def svg_plot(plot: Plot, width: int = 900, height: int = 260) -> str:
    """A small inline SVG: bars stacked per x, or one line per series; a legend; marks as vertical ticks."""
    pad_l, pad_r, pad_t, pad_b = 50, 10, 20, 40
    points = [p for s in plot.series.values() for p in s] + [(m[0], 0.0) for m in plot.marks]
    if not points:
        return f"<p><em>{html.escape(plot.title)}: nothing to plot</em></p>"
    xs = sorted({p[0] for p in points})
    # bars stand on [x, x + step) (a minute, a day): the axis runs to the last bar's right edge
    bar_xs = sorted({x for series in plot.series.values() for x, _ in series}) if plot.kind == "bars" else []
    step = min((b - a for a, b in zip(bar_xs, bar_xs[1:], strict=False)), default=60_000.0) if bar_xs else 0.0
    x0, x1 = xs[0], max(xs[-1] + step, xs[0] + 1)
    if plot.kind == "bars":
        totals: dict[float, float] = {}
        for s in plot.series.values():
            for x, y in s:
                totals[x] = totals.get(x, 0) + y
        y1 = max(totals.values(), default=1) or 1
    else:
        y1 = max((y for s in plot.series.values() for _, y in s), default=1) or 1
    w, h = width - pad_l - pad_r, height - pad_t - pad_b

    def sx(x: float) -> float:
        return pad_l + (x - x0) / (x1 - x0) * w

    def sy(y: float) -> float:
        return pad_t + h - y / y1 * h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11">']
    out.append(f'<text x="{pad_l}" y="12" font-weight="bold">{html.escape(plot.title)}</text>')
    out.append(f'<line x1="{pad_l}" y1="{pad_t + h}" x2="{pad_l + w}" y2="{pad_t + h}" stroke="#999"/>')
    out.append(f'<text x="{pad_l - 5}" y="{pad_t + 8}" text-anchor="end">{y1:g}</text>')
    out.append(f'<text x="{pad_l}" y="{height - 22}">{_iso(int(x0))}</text>')
    out.append(f'<text x="{pad_l + w}" y="{height - 22}" text-anchor="end">{_iso(int(x1))}</text>')
    bar_w = max(1.0, (sx(x0 + step) - sx(x0)) * 0.85)
    stacked: dict[float, float] = {}
    for i, (name, series) in enumerate(sorted(plot.series.items())):
        color = PALETTE[i % len(PALETTE)]
        if plot.kind == "bars":
            for x, y in series:
                base = stacked.get(x, 0.0)
                stacked[x] = base + y
                out.append(
                    f'<rect x="{sx(x):.1f}" y="{sy(base + y):.1f}" width="{bar_w:.1f}" '
                    f'height="{sy(base) - sy(base + y):.1f}" fill="{color}">'
                    f"<title>{html.escape(name)}: {y:g}</title></rect>"
                )
        else:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(series))
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        out.append(
            f'<rect x="{pad_l + (i % 6) * 145}" y="{height - 14 - 12 * (i // 6)}" width="8" height="8" fill="{color}"/>'
            f'<text x="{pad_l + (i % 6) * 145 + 11}" y="{height - 6 - 12 * (i // 6)}">{html.escape(name[:22])}</text>'
        )
    for x, label in plot.marks:
        color = "#d62728" if label.startswith("action") else "#ff7f0e"
        out.append(
            f'<line x1="{sx(x):.1f}" y1="{pad_t}" x2="{sx(x):.1f}" y2="{pad_t + h}" stroke="{color}" '
            f'stroke-dasharray="3,2"><title>{html.escape(_iso(int(x)))} {html.escape(label)}</title></line>'
        )
    out.append("</svg>")
    return "\n".join(out)


def html_page(report: Report) -> str:
    parts = [
        "<!doctype html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(report.title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}th{background:#eee}</style>",
        f"</head><body><h1>{html.escape(report.title)}</h1>",
        f"<p>livewatch archive query {html.escape(report.name)}, made {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC</p>",
    ]
    parts += [svg_plot(p) for p in report.plots]
    for t in report.tables:
        parts.append(f"<h2>{html.escape(t.title)} ({len(t.rows)})</h2><table><tr>")
        parts += [f"<th>{html.escape(c)}</th>" for c in t.columns]
        parts.append("</tr>")
        for row in t.rows:
            parts.append(
                "<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def run_report(
    reader: ArchiveReader,
    name: str,
    start_ms: int,
    end_ms: int,
    *,
    room: str | None = None,
    account: str | None = None,
    pseudonym: str | None = None,
) -> Report:
    if name == "room-timeline":
        if not room:
            raise ValueError("room-timeline needs --room ROOM")
        return room_timeline(reader, room, start_ms, end_ms)
    if name == "rule-hits":
        return rule_hits(reader, start_ms, end_ms)
    if name == "account-history":
        if not account or not pseudonym:
            raise ValueError("account-history needs --account USER_ID")
        return account_history(reader, account, pseudonym, start_ms, end_ms)
    raise ValueError(f"unknown report {name!r}: one of {', '.join(REPORTS)}")


def report_names() -> Sequence[str]:
    return REPORTS
