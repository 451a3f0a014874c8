"""Evaluate the false-claims lexicon (rules/claims.yaml) — an evaluation to read, not a test.

    python scripts/eval_claims.py [--rules rules/claims.yaml] [--labelled scripts/claims_labelled.jsonl]
                                  [--data ../shared/data/livechat_douyin_dev.jsonl] [--show 10]

(a) Labelled set: precision / recall / F1 per claim type and overall, per split ('dev': the rules
    were tuned on it; 'holdout': written after tuning and not tuned on) and in all. An example is predicted
    positive when the detector reports any finding for it (live rules only, unless --include-shadow);
    for a claim type T, the prediction is "a rule of type T fired" and the gold is "label 1 and
    claim_type T". Misses and false alarms are listed.
(b) Real host speech: every ``reply`` of the LiveChat Douyin dev split (ASR of the host) is run as a
    host transcript in a room whose product category is the default ('general'); prints how many
    replies each rule flags and some flagged replies with their evidence, for a human to judge.
(c) Throughput: transcripts per second of normalize + detect over those replies.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from detectors.base import RuleContext  # noqa: E402
from detectors.claims import ClaimRule, ClaimsSettings, ClaimsState, FalseClaimsDetector  # noqa: E402
from detectors.normalize import normalize  # noqa: E402
from schemas.events import ProductOnAir, StreamMetaEvent, TranscriptEvent  # noqa: E402
from schemas.findings import Finding  # noqa: E402

CLAIM_TYPES = ("absolute", "efficacy", "fabricated_data", "guarantee")
T0 = 1_700_000_000_000


def load_detector(path: Path) -> FalseClaimsDetector:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    rules = [ClaimRule(**r) for r in data["rules"]]
    return FalseClaimsDetector(ClaimsSettings(**data.get("settings") or {}), rules, RuleContext("eval"))


def transcript(text: str, room: str, n: int) -> TranscriptEvent:
    return TranscriptEvent(event_id=f"t{n}", room_id=room, platform="douyin", ts=T0 + n, text=text,
                           start_ms=0, end_ms=0)


def run_one(det: FalseClaimsDetector, text: str, category: str | None, n: int = 0) -> list[Finding]:
    """Findings for one host utterance, with ``category`` on air (set the way production sets it)."""
    state = ClaimsState()
    if category:
        det.detect(StreamMetaEvent(event_id=f"m{n}", room_id="eval", platform="douyin", ts=T0,
                                   products=[ProductOnAir(product_id="p", category=category)]), None, state)
    return det.detect(transcript(text, "eval", n), normalize(text), state)


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def evidence(findings: list[Finding]) -> str:
    return "; ".join(f"{f.rule_id}[{'、'.join(e.raw for e in f.evidence)}]" for f in findings)


def score_rows(det: FalseClaimsDetector, rows: list[dict], include_shadow: bool) -> list[tuple[dict, list[Finding]]]:
    scored = []
    for n, row in enumerate(rows):
        found = [f for f in run_one(det, row["text"], row.get("category"), n)
                 if include_shadow or f.status == "live"]
        scored.append((row, found))
    return scored


def print_metrics(det: FalseClaimsDetector, scored: list[tuple[dict, list[Finding]]], title: str) -> None:
    rule_type = {r.id: r.claim_type for r in det.rules}
    tp = fp = fn = tn = 0
    per = {t: Counter() for t in CLAIM_TYPES}
    for row, found in scored:
        gold, pred = row["label"] == 1, bool(found)
        tp += gold and pred
        fp += pred and not gold
        fn += gold and not pred
        tn += not gold and not pred
        fired = {rule_type[f.rule_id] for f in found}
        for t in CLAIM_TYPES:
            g = gold and row.get("claim_type") == t
            per[t]["tp"] += g and t in fired
            per[t]["fp"] += (t in fired) and not g
            per[t]["fn"] += g and t not in fired
    n_pos = sum(r["label"] == 1 for r, _ in scored)
    print(f"\n-- {title}: {len(scored)} examples, {n_pos} positive")
    print(f"   {'claim type':<16} {'TP':>4} {'FP':>4} {'FN':>4} {'precision':>10} {'recall':>8} {'F1':>6}")
    for t in CLAIM_TYPES:
        c = per[t]
        p, r, f = prf(c["tp"], c["fp"], c["fn"])
        print(f"   {t:<16} {c['tp']:>4} {c['fp']:>4} {c['fn']:>4} {p:>10.3f} {r:>8.3f} {f:>6.3f}")
    p, r, f = prf(tp, fp, fn)
    print(f"   {'overall':<16} {tp:>4} {fp:>4} {fn:>4} {p:>10.3f} {r:>8.3f} {f:>6.3f}   (TN {tn})")


def eval_labelled(det: FalseClaimsDetector, path: Path, include_shadow: bool) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    scored = score_rows(det, rows, include_shadow)
    print(f"== (a) labelled set: {path}"
          f"{' (shadow rules counted)' if include_shadow else ' (live rules only)'}")
    splits = sorted({r.get("split", "all") for r in rows})
    if len(splits) > 1:
        for split in splits:
            note = {"dev": "written first; the rules were tuned on it",
                    "dev2": "written as a hold-out after the first tuning, then tuned on",
                    "holdout": "written last, never tuned on"}
            print_metrics(det, [(r, f) for r, f in scored if r.get("split", "all") == split],
                          f"split '{split}' ({note.get(split, '')})")
    print_metrics(det, scored, "all examples")
    misses = [(r, f) for r, f in scored if r["label"] == 1 and not f]
    alarms = [(r, f) for r, f in scored if r["label"] != 1 and f]
    print(f"\n-- misses ({len(misses)}):")
    for row, _ in misses:
        print(f"   [{row.get('split', '')}|{row.get('claim_type')}|{row.get('category')}] {row['text']}")
    print(f"\n-- false alarms ({len(alarms)}):")
    for row, found in alarms:
        print(f"   [{row.get('split', '')}|{row.get('category')}] {row['text']}  →  {evidence(found)}")


def eval_douyin(det: FalseClaimsDetector, path: Path, show: int) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    replies = [(r.get("streamer", "room"), r["reply"]) for r in rows if r.get("reply")]
    per_rule: Counter[str] = Counter()
    flagged = []
    for n, (room, text) in enumerate(replies):
        found = det.detect(transcript(text, room, n), normalize(text), ClaimsState())
        for f in found:
            per_rule[f.rule_id] += 1
        if found:
            flagged.append((text, found))
    print(f"\n== (b) real host speech: {path} — {len(replies)} replies as host transcripts, category "
          f"'{det.settings.default_category}'")
    print(f"flagged: {len(flagged)} replies ({len(flagged) / max(len(replies), 1):.2%})")
    for rule in det.rules:
        print(f"   {per_rule[rule.id]:>4}  {rule.id}{' (shadow)' if rule.status == 'shadow' else ''}")
    print(f"-- {min(show, len(flagged))} of {len(flagged)} flagged replies:")
    for text, found in flagged[:show]:
        print(f"   {text[:90]}  →  {evidence(found)}")

    # (c) throughput: one warm-up pass (fills the normalisation caches), then a timed pass
    for n, (room, text) in enumerate(replies[:500]):
        det.detect(transcript(text, room, n), normalize(text), ClaimsState())
    chars = sum(len(t) for _, t in replies)
    start = time.perf_counter()
    for n, (room, text) in enumerate(replies):
        det.detect(transcript(text, room, n), normalize(text), ClaimsState())
    elapsed = time.perf_counter() - start
    print(f"\n== (c) throughput: {len(replies)} transcripts ({chars} chars) in {elapsed:.2f} s — "
          f"{len(replies) / elapsed:,.0f} transcripts/s, {chars / elapsed:,.0f} chars/s "
          f"(normalize + detect, {len(det.rules)} rules, one core)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=Path, default=REPO / "rules" / "claims.yaml")
    ap.add_argument("--labelled", type=Path, default=REPO / "scripts" / "claims_labelled.jsonl")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "livechat_douyin_dev.jsonl",
                    help="LiveChat Douyin jsonl (rows {streamer, comment, reply})")
    ap.add_argument("--show", type=int, default=10, help="flagged Douyin replies to print")
    ap.add_argument("--include-shadow", action="store_true", help="count shadow-rule findings in (a)")
    args = ap.parse_args(argv)

    det = load_detector(args.rules)
    print(f"rules: {args.rules} — {len(det.rules)} active rules")
    eval_labelled(det, args.labelled, args.include_shadow)
    if args.data.exists():
        eval_douyin(det, args.data, args.show)
    else:
        print(f"\n(b)/(c) skipped: {args.data} not found")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
