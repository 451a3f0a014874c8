"""Rule files: validated at load, every problem reported with file:line, hot-swapped atomically."""

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import pipeline.ruleset as ruleset_module
from pipeline.cli import main
from pipeline.errors import RuleSetError
from pipeline.ruleset import RulesetWatcher, load_ruleset
from tests.conftest import TINY_CLAIMS


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(RuleSetError) as err:
        load_ruleset(directory)
    return [str(p) for p in err.value.problems]


def test_the_shipped_rules_load_and_their_examples_hold(ruleset):
    assert ruleset.version.startswith("2026.")
    assert ruleset.rules, "the shipped ruleset has rules"
    assert all(r.legal_basis for r in ruleset.rules.values())


def test_the_ruleset_version_changes_with_any_rule_text(tiny_rules: Path):
    before = load_ruleset(tiny_rules).version
    (tiny_rules / "claims.yaml").write_text(TINY_CLAIMS.replace("version: 1", "version: 2", 1), encoding="utf-8")
    assert load_ruleset(tiny_rules).version != before


def test_a_bad_field_is_reported_with_file_line_rule_and_field(tiny_rules: Path):
    (tiny_rules / "claims.yaml").write_text(
        TINY_CLAIMS.replace("severity: high", "severity: extreme"), encoding="utf-8"
    )
    [problem] = problems_of(tiny_rules)
    line = TINY_CLAIMS.splitlines().index("    severity: high") + 1
    assert f"claims.yaml:{line}" in problem
    assert "rule claims.tiny.cure" in problem and "field 'severity'" in problem


def test_every_problem_is_reported_at_once(tiny_rules: Path):
    broken = (
        TINY_CLAIMS.replace("severity: medium", "severity: nope")
        .replace("claim_type: efficacy", "claim_type: efficacy\n    colour: red")
        .replace("no_match: [治理环境]", "no_match: [根治]")
    )
    (tiny_rules / "claims.yaml").write_text(broken, encoding="utf-8")
    problems = problems_of(tiny_rules)
    text = "\n".join(problems)
    assert "field 'severity'" in text and "field 'colour'" in text
    assert len(problems) == 2  # the broken rule's example is not run: the rule itself is refused


def test_a_failing_inline_example_refuses_the_ruleset(tiny_rules: Path):
    (tiny_rules / "claims.yaml").write_text(
        TINY_CLAIMS.replace("no_match: [治理环境]", "no_match: [根治]"), encoding="utf-8"
    )
    [problem] = problems_of(tiny_rules)
    assert "field 'examples'" in problem and "'根治'" in problem and "should not match" in problem


@pytest.mark.parametrize(
    "text, expected",
    [
        ("detector: false_claims\nrules:\n  - id: [unclosed\n", "invalid YAML"),
        ("detector: no_such_detector\nrules: []\n", "unknown detector 'no_such_detector'"),
        ("- just\n- a list\n", "expected a mapping"),
        (
            "detector: false_claims\nrules:\n  - id: Bad Id!\n    version: 1\n    severity: low\n"
            "    legal_basis: 《广告法》\n    claim_type: absolute\n",
            "field 'id'",
        ),
    ],
)
def test_malformed_files_are_refused_with_a_reason(tiny_rules: Path, text, expected):
    (tiny_rules / "extra.yaml").write_text(text, encoding="utf-8")
    assert any(expected in p and "extra.yaml" in p for p in problems_of(tiny_rules))


def test_duplicate_rule_ids_across_files_are_refused(tiny_rules: Path):
    (tiny_rules / "more.yaml").write_text(TINY_CLAIMS, encoding="utf-8")
    problems = problems_of(tiny_rules)
    assert any("duplicate rule id" in p and "claims.yaml:" in p for p in problems)


def test_rules_check_exits_2_and_names_the_problem(tiny_rules: Path, capsys):
    (tiny_rules / "claims.yaml").write_text(TINY_CLAIMS.replace("version: 1", "version: 0", 1), encoding="utf-8")
    assert main(["rules", "check", str(tiny_rules)]) == 2
    err = capsys.readouterr().err
    assert "claims.yaml:4" in err and "field 'version'" in err


def test_rules_check_accepts_a_good_directory(tiny_rules: Path, capsys):
    assert main(["rules", "check", str(tiny_rules)]) == 0
    assert "OK: ruleset" in capsys.readouterr().out


def test_off_rules_are_not_loaded_into_detectors(tiny_rules: Path):
    (tiny_rules / "claims.yaml").write_text(
        TINY_CLAIMS.replace("severity: high", "severity: high\n    status: off"), encoding="utf-8"
    )
    [claims] = load_ruleset(tiny_rules).detectors
    assert [r.id for r in claims.rules] == ["claims.tiny.lowest"]


def test_watcher_swaps_in_a_good_edit_and_keeps_the_running_ruleset_on_a_bad_one(tiny_rules: Path):
    watcher = RulesetWatcher(tiny_rules)
    first = watcher.current
    assert watcher.poll() is False

    (tiny_rules / "claims.yaml").write_text(TINY_CLAIMS.replace("severity: high", "severity: bogus"), encoding="utf-8")
    assert watcher.poll() is False
    assert watcher.current is first and watcher.last_error is not None

    (tiny_rules / "claims.yaml").write_text(
        TINY_CLAIMS.replace("severity: high", "severity: critical"), encoding="utf-8"
    )
    assert watcher.poll() is True
    assert watcher.current.version != first.version
    assert watcher.current.rules["claims.tiny.cure"].severity == "critical"


class CoarseClock:
    """Rule files as a file system with a coarse clock shows them: every write the test makes is stamped with the
    time it sets (two writes in one tick keep the same times), and "now" is what it says."""

    def __init__(self) -> None:
        self.now = time.time_ns()
        self.stamps: dict[str, int] = {}

    def files(self, directory: Path) -> list:
        return [_Stamped(p, self) for p in sorted([*directory.glob("*.yaml"), *directory.glob("*.json")])]


class _Stamped:
    def __init__(self, path: Path, clock: CoarseClock) -> None:
        self.path, self.name, self.clock = path, path.name, clock

    def stat(self) -> SimpleNamespace:
        real = self.path.stat()
        stamp = self.clock.stamps.get(self.name, 0)
        return SimpleNamespace(st_ino=real.st_ino, st_size=real.st_size, st_mtime_ns=stamp, st_ctime_ns=stamp)

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()


def test_watcher_reads_the_files_only_when_their_stat_moves_or_was_recent(tiny_rules: Path, monkeypatch):
    # the claims model is 3.8 MB: reading and hashing every file at each poll cost a worker 1 % of its core
    clock = CoarseClock()
    reads = []
    digest = ruleset_module.rules_digest
    monkeypatch.setattr(ruleset_module, "rules_digest", lambda d: reads.append(d) or digest(d))
    monkeypatch.setattr(ruleset_module, "rule_files", clock.files)
    monkeypatch.setattr(ruleset_module.time, "time_ns", lambda: clock.now)
    watcher = RulesetWatcher(tiny_rules)
    claims = tiny_rules / "claims.yaml"
    reads.clear()
    assert watcher.poll() is False and len(reads) == 1  # the first look reads
    assert watcher.poll() is False and watcher.poll() is False and len(reads) == 1  # settled: the stat answers

    # an edit, seen at once; then another of the same size in the same tick of the file system's clock
    clock.now += 10 * ruleset_module.SETTLED_NS
    claims.write_text(TINY_CLAIMS.replace("severity: high", "severity: low", 1), encoding="utf-8")
    clock.stamps["claims.yaml"] = clock.now
    assert watcher.poll() is True and watcher.current.rules["claims.tiny.cure"].severity == "low"
    cure = TINY_CLAIMS.index("  - id: claims.tiny.cure")
    again = TINY_CLAIMS[:cure] + TINY_CLAIMS[cure:].replace("version: 1", "version: 2", 1)
    claims.write_text(again.replace("severity: high", "severity: low", 1), encoding="utf-8")  # same size, same stat
    # seconds later (the worker polls every 5 s): the last look was too close to the file's time to be trusted
    clock.now += 10 * ruleset_module.SETTLED_NS
    assert watcher.poll() is True and watcher.current.rules["claims.tiny.cure"].version == 2
    reads.clear()
    assert watcher.poll() is False and watcher.poll() is False and reads == []  # settled now: the stat answers


def test_a_lone_surrogate_written_as_an_escape_is_refused_with_its_line_and_field(tiny_rules: Path):
    # YAML's escape "\ud800" writes half of a UTF-16 pair, which no event can hold (the decoder refuses it): the
    # normaliser dropped it from the term unseen, and a rule holding one cannot be written as JSON
    (tiny_rules / "claims.yaml").write_text(TINY_CLAIMS.replace("[根治, 降血压]", '[根治, "降血\\ud800压"]'), "utf-8")
    [problem] = problems_of(tiny_rules)
    line = 1 + next(i for i, text in enumerate(TINY_CLAIMS.splitlines()) if "降血压" in text)
    assert problem.startswith(f"{tiny_rules / 'claims.yaml'}:{line}: field 'rules.1.terms.1': a lone surrogate")


def test_a_pattern_that_is_not_a_regular_expression_is_refused_with_its_line(tiny_rules: Path):
    (tiny_rules / "claims.yaml").write_text(
        TINY_CLAIMS.replace("    terms: [根治, 降血压]", "    terms: [根治, 降血压]\n    patterns: ['瘦(\\\\d+斤']"),
        encoding="utf-8",
    )
    [problem] = problems_of(tiny_rules)
    assert "claims.yaml:" in problem and "not a valid regular expression" in problem


def test_a_reload_checks_again_the_examples_of_the_rules_that_changed_only(tiny_rules: Path, monkeypatch):
    """Checking every rule's examples alone was three quarters of a load; what decides a rule's examples is its
    detector, settings, text and the data files, so a reload after a one-rule edit checks that rule."""
    from detectors.claims import FalseClaimsDetector

    monkeypatch.setattr(ruleset_module, "_EXAMPLE_PROBLEMS", {})  # what other tests' loads left does not count
    checked: list[str] = []
    check = FalseClaimsDetector.check_examples
    monkeypatch.setattr(
        FalseClaimsDetector, "check_examples", lambda self, rule: checked.append(rule.id) or check(self, rule)
    )
    claims = tiny_rules / "claims.yaml"
    load_ruleset(tiny_rules)
    checked.clear()
    cure = TINY_CLAIMS.index("  - id: claims.tiny.cure")
    claims.write_text(TINY_CLAIMS[:cure] + TINY_CLAIMS[cure:].replace("version: 1", "version: 2", 1), "utf-8")
    assert load_ruleset(tiny_rules).rules["claims.tiny.cure"].version == 2 and checked == ["claims.tiny.cure"]

    # an edit that breaks the examples is refused, as at a first load; and the same text again is refused again
    broken = TINY_CLAIMS.replace("no_match: [治理环境]", "no_match: [治理环境, 能根治]")
    claims.write_text(broken, "utf-8")
    for _ in range(2):
        assert any("'能根治'" in p and "should not match but does" in p for p in problems_of(tiny_rules))

    # the settings, and the data files, decide too: a change to either checks every rule again
    checked.clear()
    claims.write_text(TINY_CLAIMS + "settings:\n  long_speech_chars: 61\n", "utf-8")
    load_ruleset(tiny_rules)
    assert sorted(checked) == ["claims.tiny.cure", "claims.tiny.lowest"]
    checked.clear()
    (tiny_rules / "notes.json").write_text("{}", "utf-8")
    load_ruleset(tiny_rules)
    assert sorted(checked) == ["claims.tiny.cure", "claims.tiny.lowest"]


def test_a_problem_in_a_key_that_overrides_a_merged_one_is_reported_at_the_override(tiny_rules: Path):
    # the parse puts what "<<" brings in before the rule's own keys: the own one, last, is where the problem is
    merged = (
        TINY_CLAIMS.replace("  - id: claims.tiny.lowest\n", "  - &lowest\n    id: claims.tiny.lowest\n")
        .replace("  - id: claims.tiny.cure\n", "  - <<: *lowest\n    id: claims.tiny.cure\n")
        .replace("severity: high", "severity: bogus")
    )
    (tiny_rules / "claims.yaml").write_text(merged, "utf-8")
    line = 1 + merged.splitlines().index("    severity: bogus")
    assert any(f"claims.yaml:{line}: rule claims.tiny.cure: field 'severity'" in p for p in problems_of(tiny_rules))


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (
            TINY_CLAIMS.replace("severity: high", "severity: high\x01"),
            1 + TINY_CLAIMS.splitlines().index("    severity: high"),
            "special characters are not allowed (U+0001)",
        ),
        (TINY_CLAIMS.replace("    version: 1\n", "    version: 2026-02-30\n", 1), 4, "day is out of range"),
        # an alias inside its own anchor: a cycle the lone-surrogate check once walked for ever
        (TINY_CLAIMS.replace("terms: [根治, 降血压]", "terms: &t [根治, *t]"), 18, "valid string"),
        # nested deeper than a parser holds (libyaml crashed the process at ≈ 30,000 levels)
        (
            TINY_CLAIMS.replace("terms: [根治, 降血压]", "terms: " + "[" * 40_000 + "]" * 40_000),
            None,
            "nested too deep",
        ),
    ],
)
def test_a_file_yaml_cannot_read_is_refused_not_crashed_on(tiny_rules: Path, text: str, line, words: str):
    (tiny_rules / "claims.yaml").write_text(text, "utf-8")
    [problem] = problems_of(tiny_rules)
    where = f"claims.yaml:{line}: " if line else "claims.yaml: "
    assert where in problem and words in problem


def test_a_load_that_fails_is_tried_again_at_the_next_look(tiny_rules: Path, monkeypatch):
    watcher = RulesetWatcher(tiny_rules)
    (tiny_rules / "claims.yaml").write_text(TINY_CLAIMS.replace("severity: high", "severity: low", 1), "utf-8")
    load = ruleset_module.load_ruleset
    monkeypatch.setattr(ruleset_module, "load_ruleset", lambda d: (_ for _ in ()).throw(OSError("vanished")))
    with pytest.raises(OSError):
        watcher.load_if_changed()
    monkeypatch.setattr(ruleset_module, "load_ruleset", load)
    fresh = watcher.load_if_changed()  # the same bytes: loaded again, not taken for seen
    assert fresh is not None and fresh.rules["claims.tiny.cure"].severity == "low"
