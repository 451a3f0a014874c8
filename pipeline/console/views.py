"""What the pages show, computed without Flask: highlighted text, the room's timeline plot, times."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

CST = timezone(timedelta(hours=8))  # the streams' own time zone, as the CLI's feed shows it


def clock(ts: int | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts / 1000, CST).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Segment:
    text: str
    marked: bool


def highlight(text: str, spans: Sequence[tuple[int, int]]) -> list[Segment]:
    """The text cut into plain and marked segments; overlapping spans are merged, spans outside are ignored."""
    merged: list[list[int]] = []
    for start, end in sorted((max(0, s), min(len(text), e)) for s, e in spans):
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, pos = [], 0
    for start, end in merged:
        if start > pos:
            out.append(Segment(text[pos:start], False))
        out.append(Segment(text[start:end], True))
        pos = end
    if pos < len(text):
        out.append(Segment(text[pos:], False))
    return out


def spans_of(text: str, pieces: Sequence[str]) -> list[tuple[int, int]]:
    """Where each piece (the model's deciding spans, given as text) occurs in the text."""
    spans = []
    for piece in pieces:
        if not piece:
            continue
        at = text.find(piece)
        while at >= 0:
            spans.append((at, at + len(piece)))
            at = text.find(piece, at + len(piece))
    return spans


@dataclass(frozen=True)
class Timeline:
    width: int
    height: int
    plot_height: int
    bars: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    ticks: list[dict[str, Any]]
    peak: int


def timeline(
    per_minute: Sequence[tuple[int, int]],
    findings: Sequence[dict[str, Any]],
    actions: Sequence[dict[str, Any]],
    width: int = 900,
    plot_height: int = 120,
) -> Timeline:
    """An inline-SVG plot of a room: events per minute as bars, findings and actions as marks below them."""
    times = [m for m, _ in per_minute] + [f["ts"] for f in findings] + [a["ts"] for a in actions]
    if not times:
        return Timeline(width, plot_height + 60, plot_height, [], [], [], [], 0)
    start = min(times) // 60_000 * 60_000
    end = max(times) // 60_000 * 60_000 + 60_000
    span = max(end - start, 60_000)

    def x(ts: int) -> float:
        return float(round(40 + (width - 70) * (ts - start) / span, 1))

    peak = max((n for _, n in per_minute), default=0)
    bar_w = max(1.0, round((width - 70) * 60_000 / span - 1, 1))
    bars = [
        {
            "x": x(m),
            "y": round(plot_height - plot_height * n / peak, 1) if peak else plot_height,
            "w": bar_w,
            "h": round(plot_height * n / peak, 1) if peak else 0,
            "label": f"{clock(m)[11:16]}: {n} events",
        }
        for m, n in per_minute
    ]
    marks_f = [
        {"x": x(f["ts"]), "severity": f["severity"], "label": f"{clock(f['ts'])[11:]} {f['rule_id']}", **f}
        for f in findings
    ]
    marks_a = [{"x": x(a["ts"]), "label": f"{clock(a['ts'])[11:]} {a['action']}", **a} for a in actions]
    minutes = span // 60_000
    step = max(1, minutes // 8) * 60_000
    ticks = [{"x": x(t), "label": clock(t)[11:16]} for t in range(start, end + 1, step)]
    return Timeline(width, plot_height + 60, plot_height, bars, marks_f, marks_a, ticks, peak)
