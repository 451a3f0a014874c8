"""The claims model's training script: same data and seed give the same bytes, the exported weights score
exactly as scikit-learn does, and folds never split texts that share a clause."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

from detectors.claims_model import (
    WORD,
    ClauseBreaker,
    FeatureSpec,
    Featurizer,
    _claims_kernel,
    gap_features,
    load_model,
)
from detectors.normalize import normalize

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("train_claims", REPO / "scripts" / "train_claims.py")
assert spec and spec.loader
train = importlib.util.module_from_spec(spec)
sys.modules["train_claims"] = train
spec.loader.exec_module(train)


def corpus_sample(n: int = 240) -> list:
    rows = []
    for path in sorted((REPO / "corpus" / "claims").glob("train_*.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for line in lines[:: max(1, len(lines) // (n // 2))]:
            r = json.loads(line)
            rows.append(train.Row(r["text"], r["claim_type"], path.name, "short", r))
    return rows


@pytest.fixture(scope="module")
def featurizer() -> Featurizer:
    vocab = yaml.safe_load((REPO / "corpus" / "claims" / "vocabulary.yaml").read_text(encoding="utf-8"))
    return Featurizer(FeatureSpec(), {normalize(w).text: c for c, ws in vocab["classes"].items() for w in ws})


def fit_and_export(rows, featurizer) -> bytes:
    for r in rows:
        r.units = [r.norm.text[s:e] for s, e in featurizer.units(r.norm)]
    trainer = train.Trainer(featurizer, seed=0)
    return trainer.export(trainer.fit(rows), featurizer.vocabulary, {"sample": {}}, {})


def test_same_data_and_seed_give_the_same_model_bytes(featurizer):
    assert fit_and_export(corpus_sample(), featurizer) == fit_and_export(corpus_sample(), featurizer)


def test_the_exported_model_scores_as_scikit_learn_does(featurizer):
    rows = corpus_sample()
    for r in rows:
        r.units = [r.norm.text[s:e] for s, e in featurizer.units(r.norm)]
    trainer = train.Trainer(featurizer, seed=0)
    (vec, lr), _ = heads = trainer.fit(rows)
    model = load_model(trainer.export(heads, featurizer.vocabulary, {}, {}))
    feats = [featurizer.features(r.norm.text) for r in rows]
    ref = lr.predict_proba(vec.transform(feats))[:, list(lr.classes_).index("none")]
    ours = np.array([model.segment.proba(f)[0] for f in feats])
    assert np.abs(ref - ours).max() < 1e-3


def test_texts_sharing_a_clause_or_contained_in_another_share_a_fold_group():
    rows = [
        train.Row(t, "none", "t", "short", {})
        for t in (
            "家人们今天福利很大，这个鱼油每天两粒，血管干干净净的，一号链接直接拍，库存不多了，没拍的姐妹抓紧时间，"
            "今天下单明天就发货，七天无理由，运费险也给大家安排上了，喜欢的直接去拍，拍完记得扣个已拍",  # long
            "这个鱼油每天两粒，血管干干净净的",
            "两粒，血管干干净净的",  # across a clause break: only containment in the first joins it
            "完全不相干的一句话，讲讲天气",
        )
    ]
    groups = train.leak_free_groups(rows)
    assert groups[0] == groups[1] == groups[2]
    assert groups[3] != groups[0]


def test_fold_groups_do_not_depend_on_the_string_hash_seed():
    # a text holding clauses of two earlier texts joins both groups; which group id survives must not follow a
    # set's iteration order, which changes with PYTHONHASHSEED (and with it the folds and every CV figure)
    code = (
        "import importlib.util, sys;"
        "spec = importlib.util.spec_from_file_location('t', sys.argv[1] + '/scripts/train_claims.py');"
        "t = importlib.util.module_from_spec(spec); spec.loader.exec_module(t);"
        "a = ['这款鱼油每天吃两粒就够了', '今天直播间福利特别大的哦',"
        " '钙片要饭后半小时再吃', '七天无理由退换放心拍吧'];"
        "texts = [x + '，好' for x in a] + [a[i] + '，' + a[j] for i in range(4) for j in range(4) if i != j];"
        "print(t.leak_free_groups([t.Row(x, 'none', 'x', 'short', {}) for x in texts]).tolist())"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code, str(REPO)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3", "4", "5", "6")
    }
    assert len(runs) == 1, runs


def test_the_fast_feature_lookup_finds_exactly_the_features_the_featurizer_lists():
    model = load_model((REPO / "rules" / "claims_model.json").read_bytes())
    texts = [
        json.loads(line)["text"]
        for line in (REPO / "corpus" / "claims" / "train_b.jsonl").read_text(encoding="utf-8").splitlines()[::7]
    ]
    texts += ["減肥３斤abc瘦了10斤，jian fei", "", "123", "a", "最最最好！！", "降 血 压"]
    for text in texts:
        norm = normalize(text).text
        for h, head in enumerate((model.segment, model.clause)):
            listed = {i for i in map(head.index.get, model.featurizer.features(norm)) if i}
            assert model.known.find(norm, h) == listed, text


def test_the_compiled_kernel_is_built_and_scores_as_the_python_path_does():
    # CI measures the compiled path: a build that silently fell back to Python must fail here, not look slow
    assert _claims_kernel is not None, "detectors/_claims_kernel was not built (pip install -e . builds it)"
    model = load_model((REPO / "rules" / "claims_model.json").read_bytes())
    assert model.known.kernels is not None
    texts = [
        json.loads(line)["text"]
        for line in (REPO / "corpus" / "claims" / "train_e.jsonl").read_text(encoding="utf-8").splitlines()[::3]
    ]
    # digits (masked as "#"), characters beyond the CJK blocks, an emoji, one character, none
    texts += ["減肥３斤abc瘦了10斤，jian fei", "", "1", "𠀀𠀁降血压😀", "最最最好！！", "降 血 压", "ｱｲ"]
    for text in texts:
        for s in (normalize(text).text, text):
            for h, head in enumerate((model.segment, model.clause)):
                reference = head.proba_of_rows(model.known.find(s, h))
                assert model.known.proba(s, h) == pytest.approx(reference, abs=1e-12), text


def test_the_compiled_kernel_finds_vocabulary_words_as_the_python_path_does():
    # the kernel finds a word where its first characters' key is found (digits masked, as an n-gram's) and compares
    # the rest: words with digits, longer than the key, one a prefix of another, a word of one character
    spec = json.loads((REPO / "rules" / "claims_model.json").read_bytes())
    added = {"3天瘦": "", "7天": "", "不具有疾病预防作用啊": "", "不具有疾病": "", "瘦": "", "ab12": ""}
    spec["vocabulary"] |= added
    for k, head in enumerate(spec["heads"].values()):
        width = len(next(iter(head["weights"].values())))
        for i, word in enumerate(added):
            if (i + k) % 3:  # some words known to one head only
                head["weights"][WORD + word] = [0.5 + i + k, *([-0.3 * (i + 1)] * (width - 1))]
    data = json.dumps(spec).encode()
    model = load_model(data)
    assert model.known.kernels is not None
    texts = [
        "吃了3天瘦了",
        "吃了5天瘦了",
        "7天7天",
        "8天",
        "不具有疾病预防作用啊真的",
        "不具有疾病预防",
        "不具有疾",
        "瘦",
        "ab12ab13",
        "ab1",
        "3天瘦3天瘦",
    ]
    for text in texts:
        for h, head in enumerate((model.segment, model.clause)):
            reference = head.proba_of_rows(model.known.find(text, h))
            assert model.known.proba(text, h) == pytest.approx(reference, abs=1e-12), text
    # and the words count: a text with one scores otherwise than the same text without
    assert any(model.known.proba("吃了3天瘦了", h) != model.known.proba("吃了5天瘦了", h) for h in (0, 1))


def test_the_compiled_kernel_locates_each_known_feature_where_the_featurizer_lists_it(monkeypatch):
    # an explanation weighs the occurrences the kernel locates: the same rows, spans and order as the features
    # Featurizer.located lists (the Python path), so the reviewer's spans and weights do not depend on the build
    model = load_model((REPO / "rules" / "claims_model.json").read_bytes())
    assert model.known.kernels is not None
    texts = [
        json.loads(line)["text"]
        for line in (REPO / "corpus" / "claims" / "train_b.jsonl").read_text(encoding="utf-8").splitlines()[::5]
    ]
    # digits (masked as "#"), a repeated n-gram, characters beyond the CJK blocks, Latin letters, one character, none
    texts += ["減肥３斤abc瘦了10斤，jian fei", "降血压降血压", "𠀀𠀁降血压😀", "最最最好！！", "a", "", "降 血 压"]
    verdicts = 0
    for text in texts:
        norm = normalize(text)
        for h, head in enumerate((model.segment, model.clause)):
            listed = [(row, a, b) for f, a, b in model.featurizer.located(norm.text) if (row := head.index.get(f))]
            assert model.known.located(norm.text, h) == listed, text
        verdict = model.read(norm)
        if verdict is not None:
            compiled = model.explain(norm, verdict)
            with monkeypatch.context() as m:
                m.setattr(model.known, "kernels", None)
                assert model.explain(norm, verdict) == compiled, text
            verdicts += bool(compiled)
    assert verdicts > 50  # explanations with spans were compared, not only empty ones


def explained_by_strings(model, unit: str, cls: int, limit: int = 3) -> tuple:
    """The explanation as it was built before the kernel located its features (the reference): every feature of
    the unit as a string, looked up, a tuple each, sorted by push (ties in the featurizer's order), the first dozen
    positive ones but the length bucket, overlapping spans merged."""
    head = model.clause
    known = [(row, f, s, e) for f, s, e in model.featurizer.located(unit) if (row := head.index.get(f))]
    norm = float(head.idf_squared[sorted({row for row, _, _, _ in known})].sum()) if known else 0.0
    scale = 1 / math.sqrt(norm or 1.0)
    pushes = [((head.matrix[row, cls] - head.matrix[row, 0]) * scale, f, s, e) for row, f, s, e in known]
    pushes.sort(key=lambda t: -t[0])
    top = [p for p in pushes if p[0] > 0 and not p[1].startswith("=")][:12]
    merged: list[list] = []
    for w, f, s, e in sorted(top, key=lambda t: t[2]):
        if merged and s < merged[-1][1]:
            merged[-1][1], merged[-1][3] = max(merged[-1][1], e), merged[-1][3] + w
            merged[-1][2].append(f)
        else:
            merged.append([s, e, [f], w])
    merged.sort(key=lambda m: -m[3])
    return tuple((s, e, " ".join(f), round(float(w), 4)) for s, e, f, w in merged[:limit])


def test_an_explanation_names_the_spans_and_weights_of_its_reference_algorithm():
    # which features, in which order among equal pushes (most explanations have ties), and their weights rounded as
    # a reviewer reads them: the compiled explanation is held to the algorithm it replaced, for every claim type
    model = load_model((REPO / "rules" / "claims_model.json").read_bytes())
    texts = [
        json.loads(line)["text"]
        for path in sorted((REPO / "corpus" / "claims").glob("train_*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()[::25]
    ]
    compared = 0
    for text in texts:
        unit = normalize(text).text
        for cls in range(1, len(model.classes)):
            expected = explained_by_strings(model, unit, cls)
            got = model._deciding(unit, 0, cls, 3)
            assert [(s, e, f) for s, e, f, _ in got] == [(s, e, f) for s, e, f, _ in expected], text
            assert [w for *_, w in got] == pytest.approx([w for *_, w in expected], abs=1e-4), text
            compared += bool(expected)
    assert compared > 200


def with_first_weight(head: dict, value: float) -> dict:
    """A head of a model file whose first feature's first weight is ``value``."""
    weights = dict(head["weights"])
    first = next(iter(weights))
    weights[first] = [value, *weights[first][1:]]
    return {**head, "weights": weights}


def test_a_damaged_model_file_is_refused_at_load_with_a_clear_error():
    spec = json.loads((REPO / "rules" / "claims_model.json").read_bytes())
    for broken in (
        {**spec, "features": {**spec["features"], "max_clause": 1}},
        {**spec, "features": {**spec["features"], "run_piece": 1}},
        {**spec, "features": {**spec["features"], "run_piece": 41}},
        {k: v for k, v in spec.items() if k != "heads"},
        {**spec, "format": 1},
        {**spec, "heads": {**spec["heads"], "clause": with_first_weight(spec["heads"]["clause"], float("nan"))}},
        {**spec, "heads": {**spec["heads"], "segment": with_first_weight(spec["heads"]["segment"], float("inf"))}},
    ):
        with pytest.raises(ValueError, match="claims model"):
            load_model(json.dumps(broken).encode())


def test_an_unpunctuated_run_is_read_in_pieces_of_its_own_when_the_model_says_so(featurizer):
    run = "这个面霜是所有牌子里保湿最好的一款今天直播间下单送两个小样我们家这个是大厂代工品质有保障放心拍"  # 48
    text = normalize(f"家人们晚上好，{run}，好了")
    start = text.text.index(run[:4])
    end = start + len(run)
    paired = featurizer.units(text)
    assert (start, end) in paired  # two overlapping pieces of 40, read as a pair: the run whole
    alone = Featurizer(FeatureSpec(run_piece=24), featurizer.vocabulary)
    clauses, pieces = alone.reading_units(text)
    assert pieces == [(start, start + 24), (start + 12, start + 36), (start + 24, end)]
    # the clauses around the run are units of their own: no unit spans the run
    assert clauses == [(0, start), (end, len(text.text))]
    assert alone.units(text) == clauses + pieces
    short = normalize("这款面霜保湿，今天有优惠，下单送小样")
    assert alone.reading_units(short) == featurizer.reading_units(short)  # punctuated speech: as before


def test_a_model_with_run_pieces_reads_each_piece_as_an_utterance(featurizer):
    rows = corpus_sample()
    for r in rows:
        r.units = [r.norm.text[s:e] for s, e in featurizer.units(r.norm)]
    trainer = train.Trainer(featurizer, seed=0, run_piece=30)  # trained as before, read in pieces of 30
    data = trainer.export(trainer.fit(rows), featurizer.vocabulary, {}, {})
    model = load_model(data)
    assert json.loads(data)["features"]["run_piece"] == 30 and model.featurizer.spec.run_piece == 30
    assert (
        "run_piece"
        not in json.loads(train.Trainer(featurizer, seed=0).export(trainer.fit(rows), {}, {}, {}))["features"]
    )
    claim = "这款鱼油能降血压还能治好失眠"
    filler = "今天直播间福利很大大家可以看一下我们的链接库存不多了喜欢的抓紧时间下单我们明天就发货了"
    text = normalize(filler + claim + filler)
    verdict = model.read(text)
    alone = model.read(normalize(claim))
    assert verdict is not None and alone is not None
    s, e = verdict.unit
    assert e - s <= 30 and claim[:6] in text.text[s:e]
    # the piece that decided is scored by both heads as an utterance of its own
    piece = normalize(text.text[s:e])
    assert verdict.segment_score == pytest.approx(1.0 - model.known.proba(piece.text, 0)[0])
    assert verdict.score == pytest.approx(min(verdict.segment_score, verdict.unit_score))
    assert alone.score >= 0.5 and verdict.score >= 0.5


@pytest.fixture(scope="module")
def breaker_spec() -> dict:
    """A clause breaker learnt from a sample of the corpus's punctuated texts."""
    return train.fit_breaker(corpus_sample(600), window=1)


def test_the_clause_breaker_is_trained_reproducibly_and_scores_its_listed_features(breaker_spec):
    assert train.fit_breaker(corpus_sample(600), window=1) == breaker_spec
    breaker = ClauseBreaker(breaker_spec)
    for text in ("这款面霜保湿效果很好今天直播间下单送小样", "减3斤", "a", ""):
        s = normalize(text).text
        listed = gap_features(s)
        assert len(listed) == max(0, len(s) - 1)
        expected = [breaker_spec["intercept"] + sum(breaker_spec["weights"].get(f, 0.0) for f in gap) for gap in listed]
        assert breaker.logits(s) == pytest.approx(expected)
        assert breaker.logits_in_python(s) == pytest.approx(expected)


def test_the_compiled_clause_breaker_scores_as_the_python_path_does(breaker_spec):
    breaker = ClauseBreaker(breaker_spec)
    assert breaker.kernel is not None, "detectors/_claims_kernel was not built (pip install -e . builds it)"
    texts = [r.text for r in corpus_sample(200)]
    texts += ["減肥３斤abc瘦了10斤jianfei", "", "1", "12", "𠀀𠀁降血压😀", "<>#", "ｱｲ"]
    for text in texts:
        for s in (normalize(text).text, text):
            assert breaker.kernel.logits(s) == pytest.approx(breaker.logits_in_python(s), abs=1e-9), text


def test_the_clause_breaker_cuts_where_the_punctuation_was_and_no_clause_is_left_longer_than_asked(breaker_spec):
    breaker = ClauseBreaker(breaker_spec)
    punctuated = [r for r in corpus_sample(600) if len(train.clause_breaks(r.norm)) >= 2]
    found = made = ends = gaps = 0
    for r in punctuated:
        s = r.norm.text
        cuts = breaker.cuts(s, max_len=20)
        assert cuts[0] == 0 and cuts[-1] == len(s) and cuts == sorted(set(cuts))
        assert all(b - a <= 20 for a, b in zip(cuts, cuts[1:], strict=False))
        assert all(b - a >= breaker.min_clause for a, b in zip(cuts, cuts[1:], strict=False))  # 20 ≥ 2 × 4
        found += len(set(cuts) & set(train.clause_breaks(r.norm)))
        made, ends, gaps = made + len(cuts) - 2, ends + len(train.clause_breaks(r.norm)), gaps + len(s) - 1
    # it learnt where clauses end: most of its cuts are where the punctuation was (a gap picked at random would
    # be one only as often as clause ends are among gaps), and it finds most of them
    assert found / made > 0.7 and found / made > 4 * ends / gaps
    assert found / ends > 0.5
    assert breaker.cuts("", 20) == [0, 0] and breaker.cuts("好", 20) == [0, 1]
    # the longest text an event may hold: cut in bounded time, no clause over the limit (a recursion overflowed)
    huge = normalize("今天直播间福利很大大家看一下我们家的链接" * 1000).text
    cuts = breaker.cuts(huge, 40)
    assert cuts[-1] == len(huge) == 20_000 and max(b - a for a, b in zip(cuts, cuts[1:], strict=False)) <= 40


def test_a_model_with_a_clause_breaker_reads_a_run_in_the_clauses_it_restores(featurizer, breaker_spec):
    rows = corpus_sample()
    for r in rows:
        r.units = [r.norm.text[s:e] for s, e in featurizer.units(r.norm)]
    trainer = train.Trainer(featurizer, seed=0, run_piece=40)
    heads = trainer.fit(rows)
    claim = "这款鱼油能降血压还能治好失眠"
    filler = "今天直播间福利很大大家可以看一下我们的链接库存不多了喜欢的抓紧时间下单我们明天就发货了"
    text = normalize(filler + claim + filler)
    readings = {}
    for alone in (0.0, 1.0):
        model = load_model(
            trainer.export(heads, featurizer.vocabulary, {}, {}, {**breaker_spec, "alone_min_score": alone})
        )
        breaker = model.featurizer.breaker
        assert breaker is not None and breaker.alone_min_score == alone
        cuts = breaker.cuts(text.text, model.featurizer.spec.max_clause)
        units, pieces = model.featurizer.reading_units(text)
        # the run is read as punctuated speech cut where the breaker put clause ends: units of two of its clauses
        assert units == [(a, c) for a, _, c in zip(cuts, cuts[1:], cuts[2:], strict=False)]
        # ... and each restored clause alone (the breaker's window of 1)
        assert pieces == list(zip(cuts, cuts[1:], strict=False))
        readings[alone] = model.read(text)
    assert all(v is not None and "降血压" in text.text[v.unit[0] : v.unit[1]] for v in readings.values())
    # read alone, the claim's clause scores higher than under the whole text's segment score
    assert readings[0.0].score > readings[1.0].score
    assert readings[1.0].segment_score == pytest.approx(1.0 - model.known.proba(text.text, 0)[0])
    # punctuated speech is read as before: the breaker reads runs only
    short = normalize("这款面霜保湿，今天有优惠，下单送小样")
    assert model.featurizer.reading_units(short) == featurizer.reading_units(short)


def test_a_damaged_clause_breaker_is_refused_at_load(breaker_spec):
    spec = json.loads((REPO / "rules" / "claims_model.json").read_bytes())
    for broken in (
        {**breaker_spec, "threshold": 1.0},
        {**breaker_spec, "threshold": "0.5"},
        {**breaker_spec, "window": 0},
        {**breaker_spec, "min_clause": 4.7},
        {**breaker_spec, "alone_min_score": 1.5},
        {**breaker_spec, "intercept": float("nan")},
        {k: v for k, v in breaker_spec.items() if k != "weights"},
        {**breaker_spec, "weights": []},
        {**breaker_spec, "weights": {"": 1.0}},
        {**breaker_spec, "weights": {"a好的": 1.0}},  # kind a is one character
        {**breaker_spec, "weights": {"z好": 1.0}},
        {**breaker_spec, "weights": {"a好": "x"}},
    ):
        with pytest.raises(ValueError, match="claims model"):
            load_model(json.dumps({**spec, "breaks": broken}).encode())


def test_the_compiled_kernel_scores_alike_when_two_threads_share_it():
    # A worker checks a reloaded ruleset's examples in a thread with the running detector's model (load_model is
    # cached by the file's bytes). A kernel's scratch marks span a call that may call back into Python (a
    # character's syllable, seen for the first time), where the other thread can run: without the lock some of
    # these texts came out with a row counted twice.
    data = (REPO / "rules" / "claims_model.json").read_bytes()
    shared, private = load_model(data), load_model.__wrapped__(data)
    # a character never seen before between two of the same features: the second is where a row was counted twice
    texts = [f"喝了能降血压{chr(c)}降血压根治失眠" for c in range(0x4E00, 0x4E00 + 5000)]
    stop = threading.Event()

    def loader() -> None:
        while not stop.is_set():
            shared.known.proba("这款能降血压，根治失眠，全网最低价", 1)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch as often as the interpreter lets the other thread in
    other = threading.Thread(target=loader)
    other.start()
    try:
        got = [shared.known.proba(t, 1) for t in texts]
    finally:
        stop.set()
        other.join()
        sys.setswitchinterval(switch)
    assert got == [private.known.proba(t, 1) for t in texts]
