"""Reviewers' decisions as training data: ``livewatch labels export``.

A confirmed finding is a positive example and a dismissed one a negative, in the formats the training
scripts read:

- false claims → ``claims_reviewed.jsonl``, rows as in ``corpus/claims/train_*.jsonl`` (text, category,
  claim_type — ``none`` for a dismissal —, evasion, family), read by ``scripts/train_claims.py`` once the file
  is in ``corpus/claims/`` as ``train_reviewed.jsonl``;
- bot floods → ``floods_reviewed.jsonl``, the pool features of a campaign finding and a label (1 confirmed,
  0 dismissed), the samples ``scripts/train_floods.py`` fits (its ``--reviewed FILE`` adds them).

Findings of other detectors, and findings without the text or features an example needs, are counted as
skipped, never guessed.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from detectors.claims_model import CLAIM_TYPES
from pipeline.console.store import Store
from schemas.findings import Finding
from schemas.reviews import Review

CLAIMS_FILE, FLOODS_FILE = "claims_reviewed.jsonl", "floods_reviewed.jsonl"


def claims_example(finding: Finding, review: Review, store: Store) -> dict[str, Any] | None:
    texts = [store.event(eid) for eid in finding.event_ids]
    text = next((e["text"] for e in texts if e and e["text"]), None)
    if text is None:  # without the room's events, the model's reading holds the utterance it judged
        reading = finding.details.get("model_reading")
        text = reading.get("unit") if isinstance(reading, dict) else None
    if not text:
        return None
    confirmed = review.decision == "confirm"
    claim_type = finding.details.get("claim_type")
    if confirmed and claim_type not in CLAIM_TYPES:  # a positive must say which kind of claim it is
        return None
    return {
        "text": text,
        "category": finding.details.get("category", "general"),
        "claim_type": claim_type if confirmed else "none",
        "evasion": None,
        "family": None if confirmed else f"reviewed_{review.reason}",
        "finding_id": finding.finding_id,
    }


def floods_example(finding: Finding, review: Review) -> dict[str, Any] | None:
    features = finding.details.get("features")
    if not isinstance(features, dict):
        return None
    return {
        "features": features,
        "label": int(review.decision == "confirm"),
        "group": "reviewed " + ("campaign" if review.decision == "confirm" else f"dismissed: {review.reason}"),
        "finding_id": finding.finding_id,
    }


def export_labels(store: Store, out_dir: Path) -> Counter[str]:
    """Write the examples; the count of each file's rows and of the findings skipped, by why."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    rows: dict[str, list[dict[str, Any]]] = {CLAIMS_FILE: [], FLOODS_FILE: []}
    for finding, review in store.reviewed():
        if finding.detector == "false_claims":
            example, target = claims_example(finding, review, store), CLAIMS_FILE
        elif finding.detector == "bot_flood":
            example, target = floods_example(finding, review), FLOODS_FILE
        else:
            counts[f"skipped ({finding.detector}: no training script reads it)"] += 1
            continue
        if example is None:
            counts[f"skipped ({finding.detector}: no text or features in the finding)"] += 1
            continue
        rows[target].append(example)
        counts[f"{target} {'positive' if review.decision == 'confirm' else 'negative'}"] += 1
    for name, examples in rows.items():
        with open(out_dir / name, "w", encoding="utf-8") as f:
            for example in examples:
                f.write(json.dumps(example, ensure_ascii=False, sort_keys=True) + "\n")
    return counts
