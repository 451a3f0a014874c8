"""Evaluate the false-claims detector (lexicon + model + context) — an evaluation to read, not a test.

    python scripts/eval_claims.py [--rules DIR] [--holdout corpus/claims/holdout.jsonl ...]
                                  [--labelled scripts/claims_labelled.jsonl]
                                  [--data ../shared/data/livechat_douyin_dev.jsonl] [--show-errors]

(a) **Frozen hold-outs** (corpus/claims/holdout.jsonl — written before any model was trained, without
    looking at the training corpus or the lexicon, never edited — but context families were later widened
    on reading its false alarms, so its hard-negative figure is optimistic; holdout4.jsonl — written the
    same way later and read only for figures, never for its errors; holdout6 and holdout7 (stop 25) and
    holdout9 (stop 27), holdout10 (stop 28) and holdout12 (stop 29) the same, written after everything else: the
    clean measures; see HOLDOUT*.md;
    hold-outs 2 and 3 were read for their errors and retired into training, TRAIN_E.md and TRAIN_F.md):
    each utterance is run as a host transcript with its category on air. "Flagged" = the detector raised
    any finding (live or review); "acted" = a live one. Precision / recall / F1 per claim type (the type
    must be right), overall, recall per evasion type, false-alarm rate per hard-negative family — against
    the issue's targets.
(b) The first labelled set (scripts/claims_labelled.jsonl: the lexicon was tuned on its dev splits).
(c) **Real host speech**: every ``reply`` of the LiveChat Douyin dev split (ASR of hosts, mostly chit-
    chat) as a host transcript in a room of the default category; every flagged reply is listed.
(d) **Throughput**: utterances per second of normalise + lexicon + model over those replies, one core.

The leak-free figures on real labelled ASR (LiveAMR) come from ``python scripts/train_claims.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from detectors.claims import FalseClaimsDetector  # noqa: E402
from detectors.normalize import forget_normalized, normalize  # noqa: E402
from pipeline.ruleset import load_ruleset  # noqa: E402
from schemas.events import ProductOnAir, StreamMetaEvent, TranscriptEvent  # noqa: E402
from schemas.findings import Finding  # noqa: E402

CLAIM_TYPES = ("absolute", "efficacy", "fabricated_data", "guarantee")
T0 = 1_700_000_000_000
#: the frozen hold-outs measured by default, oldest first
HOLDOUTS = ("holdout", "holdout4", "holdout6", "holdout7", "holdout9", "holdout10", "holdout12")
TARGETS = {"recall": 0.90, "evasion_recall": 0.80, "false_alarms": 0.05, "real_flagged": 0.001, "throughput": 20_000}


def load_detector(rules_dir: Path | None) -> FalseClaimsDetector:
    ruleset = load_ruleset(rules_dir)
    det = ruleset.configured["false_claims"]
    assert isinstance(det, FalseClaimsDetector)
    return det


def transcript(text: str, room: str, n: int) -> TranscriptEvent:
    return TranscriptEvent(
        event_id=f"t{n}", room_id=room, platform="douyin", ts=T0 + n, text=text, start_ms=0, end_ms=0
    )


def run_one(det: FalseClaimsDetector, text: str, category: str | None, n: int = 0) -> list[Finding]:
    """Findings for one host utterance, with ``category`` on air (set the way production sets it)."""
    state = det.state_model()
    if category:
        det.detect(
            StreamMetaEvent(
                event_id=f"m{n}",
                room_id="eval",
                platform="douyin",
                ts=T0,
                products=[ProductOnAir(product_id="p", category=category)],
            ),
            None,
            state,
        )
    return [f for f in det.detect(transcript(text, "eval", n), normalize(text), state) if f.status != "shadow"]


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def describe(found: list[Finding]) -> str:
    out = []
    for f in found:
        spans = "、".join(e.raw for e in f.evidence[:3])
        out.append(f"{f.rule_id}/{f.status}/{f.score:.2f}[{spans}]")
    return "; ".join(out)


def mark(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def eval_holdout(det: FalseClaimsDetector, path: Path, show_errors: bool) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    scored = [(r, run_one(det, r["text"], r["category"], n)) for n, r in enumerate(rows)]
    print(
        f"== (a) frozen hold-out {path.relative_to(REPO) if path.is_relative_to(REPO) else path} — "
        f"{len(rows)} utterances, {sum(r['claim_type'] != 'none' for r in rows)} claims"
    )
    for mode in ("flagged", "acted"):
        keep = (lambda f: True) if mode == "flagged" else (lambda f: f.status == "live")
        print(f"\n-- {mode} ({'any finding, live or review' if mode == 'flagged' else 'live findings only'}):")
        print(f"   {'claim type':<16} {'TP':>4} {'FP':>4} {'FN':>4} {'precision':>10} {'recall':>8} {'F1':>6}")
        tp = fp = fn = 0
        per = {t: Counter() for t in CLAIM_TYPES}
        for row, found in scored:
            kept = [f for f in found if keep(f)]
            types = {f.details.get("claim_type") for f in kept}
            gold = row["claim_type"]
            tp += gold != "none" and bool(kept)
            fp += gold == "none" and bool(kept)
            fn += gold != "none" and not kept
            for t in CLAIM_TYPES:
                per[t]["tp"] += gold == t and t in types
                per[t]["fp"] += t in types and gold != t
                per[t]["fn"] += gold == t and t not in types
        for t in CLAIM_TYPES:
            p, r, f = prf(per[t]["tp"], per[t]["fp"], per[t]["fn"])
            print(f"   {t:<16} {per[t]['tp']:>4} {per[t]['fp']:>4} {per[t]['fn']:>4} {p:>10.3f} {r:>8.3f} {f:>6.3f}")
        p, r, f = prf(tp, fp, fn)
        print(f"   {'any claim':<16} {tp:>4} {fp:>4} {fn:>4} {p:>10.3f} {r:>8.3f} {f:>6.3f}")
        evasions = Counter()
        caught = Counter()
        families = Counter()
        alarms = Counter()
        for row, found in scored:
            hit = any(keep(f) for f in found)
            if row["claim_type"] != "none":
                key = row.get("evasion") or "(plain)"
                evasions[key] += 1
                caught[key] += hit
            else:
                key = row.get("family") or "(other)"
                families[key] += 1
                alarms[key] += hit
        print("   recall per evasion type:")
        for k in sorted(evasions):
            print(f"     {k:<16} {caught[k]:>3}/{evasions[k]:<3} {caught[k] / evasions[k]:.2f}")
        ev_n = sum(v for k, v in evasions.items() if k != "(plain)")
        ev_c = sum(v for k, v in caught.items() if k != "(plain)")
        print("   false alarms per hard-negative family:")
        for k in sorted(families):
            print(f"     {k:<16} {alarms[k]:>3}/{families[k]:<3} {alarms[k] / families[k]:.2f}")
        fa = sum(alarms.values()) / max(sum(families.values()), 1)
        print(
            f"   targets: recall {r:.3f} ≥ {TARGETS['recall']} {mark(r >= TARGETS['recall'])}; "
            f"paraphrases/evasions {ev_c}/{ev_n} = {ev_c / max(ev_n, 1):.3f} ≥ {TARGETS['evasion_recall']} "
            f"{mark(ev_c / max(ev_n, 1) >= TARGETS['evasion_recall'])}; false alarms "
            f"{sum(alarms.values())}/{sum(families.values())} = {fa:.3f} ≤ {TARGETS['false_alarms']} "
            f"{mark(fa <= TARGETS['false_alarms'])}"
        )
    by = Counter()
    for _row, found in scored:
        for f in found:
            by["+".join(f.details.get("fired", []))] += 1
    print(f"\n   findings by what fired: {dict(by)}")
    if show_errors:
        print("\n-- misses:")
        for row, found in scored:
            if row["claim_type"] != "none" and not found:
                print(f"   [{row['claim_type']}|{row.get('evasion')}|{row['category']}] {row['text'][:120]}")
        print("-- false alarms:")
        for row, found in scored:
            if row["claim_type"] == "none" and found:
                print(f"   [{row.get('family')}|{row['category']}] {row['text'][:100]}  →  {describe(found)}")


def eval_labelled(det: FalseClaimsDetector, path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    print(f"\n== (b) first labelled set: {path.relative_to(REPO)} (lexicon tuned on 'dev'/'dev2')")
    print(f"   {'split':<10} {'n':>4} {'TP':>4} {'FP':>4} {'FN':>4} {'precision':>10} {'recall':>8} {'F1':>6}")
    for split in sorted({r.get("split", "all") for r in rows}):
        tp = fp = fn = 0
        sub = [r for r in rows if r.get("split", "all") == split]
        for n, r in enumerate(sub):
            hit = bool(run_one(det, r["text"], r.get("category"), n))
            gold = r["label"] == 1
            tp += gold and hit
            fp += hit and not gold
            fn += gold and not hit
        p, rc, f = prf(tp, fp, fn)
        print(f"   {split:<10} {len(sub):>4} {tp:>4} {fp:>4} {fn:>4} {p:>10.3f} {rc:>8.3f} {f:>6.3f}")


def eval_douyin(det: FalseClaimsDetector, path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    replies = [(r.get("streamer", "room"), r["reply"]) for r in rows if r.get("reply")]
    # scripts/train_claims.py trains on the even-numbered streamers' replies as compliant examples
    unseen = {
        room
        for room, _ in replies
        if room.removeprefix("streamer").isdigit() and int(room.removeprefix("streamer")) % 2 == 1
    }
    state_cls = det.state_model
    flagged = []
    per_rule: Counter[str] = Counter()
    for n, (room, text) in enumerate(replies):
        found = [f for f in det.detect(transcript(text, room, n), normalize(text), state_cls()) if f.status != "shadow"]
        for f in found:
            per_rule[f"{f.rule_id} ({f.status})"] += 1
        if found:
            flagged.append((room, text, found))
    share = len(flagged) / max(len(replies), 1)
    n_unseen = sum(room in unseen for room, _ in replies)
    flagged_unseen = sum(room in unseen for room, _, _ in flagged)
    share_unseen = flagged_unseen / max(n_unseen, 1)
    print(
        f"\n== (c) real host speech: {path.name} — {len(replies)} replies as host transcripts, category "
        f"'{det.settings.default_category}'"
    )
    print(
        f"   flagged: {len(flagged)} of all {len(replies)} ({share:.2%}); of the {n_unseen} replies of the "
        f"odd-numbered streamers, never trained on: {flagged_unseen} ({share_unseen:.2%}); target ≤ "
        f"{TARGETS['real_flagged']:.1%} {mark(share_unseen <= TARGETS['real_flagged'])}"
    )
    for rule, n in per_rule.most_common():
        print(f"     {n:>4}  {rule}")
    print("   every flagged reply (judge each by hand):")
    for room, text, found in flagged:
        print(f"     {'' if room in unseen else '(trained) '}{text[:100]}  →  {describe(found)}")

    for n, (room, text) in enumerate(replies[:500]):  # warm-up: normalisation and pinyin caches
        det.detect(transcript(text, room, n), normalize(text), state_cls())
    events = [transcript(text, room, n) for n, (room, text) in enumerate(replies)]
    states = {room: state_cls() for room, _ in replies}  # one state per room, kept across its speech as in production
    best = 0.0
    for _ in range(3):
        forget_normalized()  # each pass normalises every utterance, as a live stream of new speech would
        start = time.perf_counter()
        for ev in events:
            det.detect(ev, normalize(ev.text), states[ev.room_id])
        best = max(best, len(events) / (time.perf_counter() - start))
    print(
        f"\n== (d) throughput: {len(events)} real host utterances, normalise + lexicon + model, one core, best "
        f"of 3: {best:,.0f} utterances/s (target ≥ {TARGETS['throughput']:,}) {mark(best >= TARGETS['throughput'])}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=Path, default=None, help="rules directory (default: rules/)")
    ap.add_argument(
        "--holdout",
        type=Path,
        nargs="+",
        default=[p for n in HOLDOUTS if (p := REPO / "corpus" / "claims" / f"{n}.jsonl").exists()],
        help=f"frozen hold-outs (default: corpus/claims/{{{','.join(HOLDOUTS)}}}.jsonl)",
    )
    ap.add_argument("--labelled", type=Path, default=REPO / "scripts" / "claims_labelled.jsonl")
    ap.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared" / "data" / "livechat_douyin_dev.jsonl",
        help="LiveChat Douyin jsonl (rows {streamer, comment, reply})",
    )
    ap.add_argument("--show-errors", action="store_true", help="list the hold-out's misses and false alarms")
    args = ap.parse_args(argv)

    det = load_detector(args.rules)
    model = det.model.label if det.model else "none"
    print(
        f"false_claims: {len(det.rules)} rules ({sum(r.model is not None for r in det.rules)} read by the "
        f"model {model}), ruleset {det.context.ruleset_version}\n"
    )
    for holdout in args.holdout:
        eval_holdout(det, holdout, args.show_errors)
        print()
    if args.labelled.exists():
        eval_labelled(det, args.labelled)
    if args.data.exists():
        eval_douyin(det, args.data)
    else:
        print(f"\n(c)/(d) skipped: {args.data} not found")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
