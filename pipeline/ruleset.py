"""Load, validate and hot-swap the ruleset in ``rules/``.

Loading checks everything — YAML syntax, every rule against its detector's pydantic model, unique ids, each
rule's inline examples — and reports *all* problems at once with file, line, rule and field. The version
stamped on findings is the manifest's version plus a digest of the files; ``RulesetWatcher`` swaps in a
changed ruleset only when it loads.

Writing rules: docs/rules.md.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from detectors import REGISTRY, AnyDetector, RuleContext
from pipeline.errors import RuleProblem, RuleSetError
from pipeline.policy import EnforcementConfig, Policy
from schemas.findings import RuleStatus
from schemas.rules import Rule, RuleFile, RulesetManifest

MANIFEST = "ruleset.yaml"
ENFORCEMENT = "enforcement.yaml"


def _shipped_rules_dir() -> Path:
    """The default ruleset: the wheel ships rules/ as package data in ``pipeline/rules`` (pyproject.toml);
    in a checkout (editable install) that directory does not exist and rules/ of the checkout is used.

    The installed copy is looked up first: outside a checkout, ``site-packages/rules`` may belong to
    another distribution. A wheel installed by pip is unpacked on disk, so ``files()`` gives a ``Path``;
    the loader and the watcher need one (they glob and re-read the directory)."""
    installed = resources.files("pipeline") / "rules"
    if isinstance(installed, Path) and installed.is_dir():
        return installed
    return Path(__file__).resolve().parent.parent / "rules"


DEFAULT_RULES_DIR = _shipped_rules_dir()


@dataclass(frozen=True, slots=True)
class Route:
    """The detectors an event of one kind goes to, a viewer's comment or not (worked out once per ruleset)."""

    #: the room-keyed detectors called at every such event, in the ruleset's order
    always: tuple[AnyDetector, ...]
    #: to a viewer's comment, the detectors it is only the clock to (``viewer_comments_as_clock``): called only at a
    #: comment at which a report of theirs falls due — the engine then calls ``every`` instead of ``always``
    clocked: tuple[AnyDetector, ...]
    #: ``always`` and ``clocked``, in the ruleset's order (so the findings come in the same order either way)
    every: tuple[AnyDetector, ...]
    #: the account-keyed detectors that read it
    accounts: tuple[AnyDetector, ...]


_NOWHERE = Route((), (), (), ())


@dataclass(frozen=True)
class Ruleset:
    version: str
    directory: Path
    detectors: tuple[AnyDetector, ...]
    policy: Policy
    rules: dict[str, Rule] = field(repr=False)
    #: every configured detector, including those whose rules are all off (not in ``detectors``)
    configured: dict[str, AnyDetector] = field(default_factory=dict, repr=False)

    def detectors_for(self, kind: str, viewer_comment: bool = False) -> tuple[AnyDetector, ...]:
        """The running room-keyed detectors that read ``kind``; of a viewer's comment, those that read one."""
        return self.route(kind, viewer_comment).every

    def account_detectors_for(self, kind: str) -> tuple[AnyDetector, ...]:
        """The running detectors whose state is keyed by account (``keyed_by == "account"``) that read ``kind``."""
        return self.route(kind).accounts

    def route(self, kind: str, viewer_comment: bool = False) -> Route:
        """Where the engine sends an event of ``kind`` (a viewer's comment or not): one look-up per event."""
        return self._routes.get((kind, viewer_comment), _NOWHERE)

    @cached_property
    def _routes(self) -> dict[tuple[str, bool], Route]:  # computed once per ruleset, read per event
        routes = {}
        for kind in {k for d in self.detectors for k in d.kinds}:
            reading = [d for d in self.detectors if kind in d.kinds]
            rooms = tuple(d for d in reading if d.keyed_by == "room")
            accounts = tuple(d for d in reading if d.keyed_by == "account")
            routes[kind, False] = Route(rooms, (), rooms, accounts)
            viewers = tuple(d for d in rooms if d.reads_viewer_comments)
            routes[kind, True] = Route(
                tuple(d for d in viewers if not d.viewer_comments_as_clock),
                tuple(d for d in viewers if d.viewer_comments_as_clock),
                viewers,
                accounts,
            )
        return routes

    @cached_property
    def durable_detectors(self) -> frozenset[str]:
        """Detectors whose state a runtime must persist (sliding windows are rebuilt instead)."""
        return frozenset(d.name for d in self.detectors if d.durable_state)

    @cached_property
    def rebuilt_detectors(self) -> tuple[AnyDetector, ...]:
        """Running detectors whose state is not persisted: a runtime rebuilds it from recent input."""
        return tuple(d for d in self.detectors if not d.durable_state and d.keyed_by == "room")

    @cached_property
    def rebuild_kinds(self) -> frozenset[str]:
        """Event kinds the non-durable detectors read: the input a rebuild must re-read."""
        return frozenset(k for d in self.rebuilt_detectors for k in d.kinds)

    @cached_property
    def rebuild_history_ms(self) -> int:
        """How much input (ms of event time) before the next event a rebuild must re-read: the largest
        ``history_ms`` of the non-durable detectors (0 when there are none)."""
        return max((d.history_ms for d in self.rebuilt_detectors), default=0)

    def build(self, name: str, status: RuleStatus | Mapping[str, RuleStatus] | None = None) -> AnyDetector:
        """A detector from this ruleset's settings and rules, with rule statuses overridden — one status
        for all, or by rule id — to evaluate or test a detector whose rules ship switched off."""
        configured = self.configured[name]
        return configured if status is None else configured.with_statuses(status)


def default_rules_dir() -> Path:
    return Path(os.environ.get("LIVEWATCH_RULES_DIR", DEFAULT_RULES_DIR))


#: data files of a ruleset besides the rules (trained models); part of its digest, handed to detectors
RESOURCE_GLOB = "*.json"


def rule_files(directory: Path) -> list[Path]:
    """Every rule file and data file of a ruleset, by name."""
    return sorted([*directory.glob("*.yaml"), *directory.glob(RESOURCE_GLOB)])


def rules_digest(directory: Path) -> str:
    """A digest of every rule file's and data file's name and bytes: changes whenever any of them does."""
    h = hashlib.sha256()
    for path in rule_files(directory):
        h.update(path.name.encode())
        h.update(b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


#: a file modified this shortly before its stat was taken may be written again within the file system's timestamp
#: granularity (a few ms) with its size unchanged: such a stat is not trusted, the bytes are read again next time
#: (git's "racily clean" entries)
SETTLED_NS = 2_000_000_000


# -- YAML with line numbers ----------------------------------------------------------------------


def _line_of(node: yaml.Node | None, loc: Iterable[Any]) -> int | None:
    """1-based line of the deepest node along a pydantic error location."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            # the last: a later key wins (a duplicate, or an override of what a "<<" merge brought in, which the
            # parse puts first)
            nxt = next((v for k, v in reversed(node.value) if getattr(k, "value", None) == str(key)), None)
            if nxt is None:
                break
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _read_yaml(path: Path, problems: list[RuleProblem]) -> tuple[Any, yaml.Node | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        problems.append(RuleProblem(str(path), None, None, None, f"not UTF-8 text: {e}"))
        return None, None
    try:
        try:
            if _flow_depth(text) > DEEPEST_FOR_LIBYAML:
                raise yaml.YAMLError("nested too deep for libyaml")
            node, data = _parsed(text, _FastLoader)
        except yaml.YAMLError:  # said in the pure-Python parser's words: libyaml words some problems differently
            node, data = _parsed(text, _PythonLoader)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        problems.append(RuleProblem(str(path), line, None, None, f"invalid YAML: {e.problem}"))
        return None, None
    except yaml.reader.ReaderError as e:  # a character YAML does not allow, e.g. a control character
        line = len(_LINE_BREAK.findall(text, 0, e.position)) + 1
        code = e.character if isinstance(e.character, int) else ord(e.character)
        problems.append(RuleProblem(str(path), line, None, None, f"invalid YAML: {e.reason} (U+{code:04X})"))
        return None, None
    except RecursionError:
        problems.append(RuleProblem(str(path), None, None, None, "invalid YAML: collections nested too deep"))
        return None, None
    except yaml.YAMLError as e:
        problems.append(RuleProblem(str(path), None, None, None, f"invalid YAML: {e}"))
        return None, None
    if not isinstance(data, dict):
        problems.append(RuleProblem(str(path), 1, None, None, "expected a mapping at the top of the file"))
        return None, None
    surrogate = _lone_surrogate(node)
    if surrogate is not None:
        line, field = surrogate
        problems.append(
            RuleProblem(
                str(path),
                line,
                None,
                field,
                "a lone surrogate (an escape such as \\ud800): not a character (beyond U+FFFF write \\U0001F600)",
            )
        )
        return None, None
    return data, node


_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate(node: yaml.Node | None) -> tuple[int, str] | None:
    """Line and field of the first string holding a lone surrogate, which YAML's escapes can write: no event can
    hold one (the decoder refuses them), and a rule's strings are written out as JSON (checks, findings)."""
    stack: list[tuple[yaml.Node, str]] = [(node, "")] if node is not None else []
    seen: set[int] = set()  # each node once: an alias shares its anchor's node, and may sit inside it (a cycle)
    while stack:
        item, field = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, yaml.ScalarNode):
            if isinstance(item.value, str) and _SURROGATE.search(item.value):
                return item.start_mark.line + 1, field
        elif isinstance(item, yaml.MappingNode):
            for key, value in reversed(item.value):
                name = f"{field}.{key.value}" if field else str(key.value)
                stack += [(value, name), (key, name)]
        elif isinstance(item, yaml.SequenceNode):
            stack += [(value, f"{field}.{i}") for i, value in reversed(list(enumerate(item.value)))]
    return None


class _MarksValues:
    """A value YAML reads but cannot hold (the date 2026-02-30, an integer of 5,000 digits) refused at its line:
    PyYAML's constructors raise a bare ValueError."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)  # type: ignore[misc]
        except ValueError as e:
            raise yaml.constructor.ConstructorError(None, None, str(e), node.start_mark) from e


class _PythonLoader(_MarksValues, yaml.SafeLoader):
    pass


#: libyaml's parser when PyYAML has it (its wheels do): the pure-Python one, run twice over the rule files (115 KB of
#: YAML), was over a quarter of a ruleset load — which a worker paid at every rule edit
class _FastLoader(_MarksValues, getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    pass


#: flow collections nested deeper than this are left to the pure-Python parser, which refuses what it cannot hold
#: (RecursionError, at a few hundred levels): libyaml crashed the process at ≈ 30,000 (a review's probe)
DEEPEST_FOR_LIBYAML = 100

_BRACKETS = re.compile(r"[^\[\]{}]+")
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")  # what YAML counts as a line break


def _flow_depth(text: str) -> int:
    """An upper bound of the text's flow nesting: every bracket counts, quoted or not."""
    depth = deepest = 0
    for ch in _BRACKETS.sub("", text):
        depth = depth + 1 if ch in "[{" else max(0, depth - 1)
        deepest = max(deepest, depth)
    return deepest


def _parsed(text: str, loader_cls: type[yaml.SafeLoader]) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (where the problems are, by line) and its data, from one parse."""
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
        return node, loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


def _validation_problems(
    err: ValidationError, path: Path, node: yaml.Node | None, prefix: tuple[Any, ...], entry: str | None
) -> list[RuleProblem]:
    out = []
    for e in err.errors():
        loc = prefix + tuple(e["loc"])
        field_name = ".".join(str(x) for x in e["loc"]) or None
        out.append(RuleProblem(str(path), _line_of(node, loc), entry, field_name, e["msg"]))
    return out


def _validate(
    model: type[BaseModel],
    data: Any,
    path: Path,
    node: yaml.Node | None,
    prefix: tuple[Any, ...],
    entry: str | None,
    problems: list[RuleProblem],
) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems.extend(_validation_problems(err, path, node, prefix, entry))
        return None


# -- loading ---------------------------------------------------------------------------------------


def load_ruleset(directory: Path | str | None = None, *, check_examples: bool = True) -> Ruleset:
    """Load and validate a ruleset; raise ``RuleSetError`` listing every problem found."""
    directory = Path(directory) if directory is not None else default_rules_dir()
    problems: list[RuleProblem] = []
    if not directory.is_dir():
        raise RuleSetError(
            [
                RuleProblem(
                    str(directory),
                    None,
                    None,
                    None,
                    "not a directory of rule files; pass --rules DIR or set LIVEWATCH_RULES_DIR",
                )
            ]
        )

    manifest_path = directory / MANIFEST
    manifest: RulesetManifest | None = None
    if manifest_path.exists():
        data, node = _read_yaml(manifest_path, problems)
        if data is not None:
            manifest = _validate(RulesetManifest, data, manifest_path, node, (), None, problems)
    else:
        problems.append(RuleProblem(str(manifest_path), None, None, None, "missing: it gives the ruleset version"))

    enforcement: EnforcementConfig | None = None
    enforcement_path = directory / ENFORCEMENT
    if enforcement_path.exists():
        data, node = _read_yaml(enforcement_path, problems)
        if data is not None:
            enforcement = _validate(EnforcementConfig, data, enforcement_path, node, (), None, problems)
    else:
        problems.append(RuleProblem(str(enforcement_path), None, None, None, "missing: it gives the ladders"))

    version = f"{manifest.version if manifest else '?'}+{rules_digest(directory)[:8]}"
    resources = {path.name: path.read_bytes() for path in sorted(directory.glob(RESOURCE_GLOB))}
    context = RuleContext(ruleset_version=version, resources=resources)
    resources_digest = hashlib.sha256(
        b"".join(n.encode() + b"\0" + hashlib.sha256(b).digest() for n, b in resources.items())
    ).hexdigest()

    # detector name → (settings, [(rule, path, node, index)])
    settings: dict[str, tuple[Any, Path]] = {}
    rules_by_detector: dict[str, list[tuple[Rule, Path, yaml.Node | None, int]]] = {}
    rule_sites: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        if path.name in (MANIFEST, ENFORCEMENT):
            continue
        data, node = _read_yaml(path, problems)
        if data is None:
            continue
        rule_file = _validate(RuleFile, data, path, node, (), None, problems)
        if rule_file is None:
            continue
        detector_cls = REGISTRY.get(rule_file.detector)
        if detector_cls is None:
            problems.append(
                RuleProblem(
                    str(path),
                    _line_of(node, ("detector",)),
                    None,
                    "detector",
                    f"unknown detector {rule_file.detector!r}; known: {sorted(REGISTRY)}",
                )
            )
            continue
        if rule_file.settings:
            if rule_file.detector in settings:
                problems.append(
                    RuleProblem(
                        str(path),
                        _line_of(node, ("settings",)),
                        None,
                        "settings",
                        f"settings for {rule_file.detector!r} are already given in "
                        f"{settings[rule_file.detector][1].name}; give them in one file",
                    )
                )
            else:
                parsed = _validate(
                    detector_cls.settings_model, rule_file.settings, path, node, ("settings",), None, problems
                )
                if parsed is not None:
                    settings[rule_file.detector] = (parsed, path)
        for i, raw_rule in enumerate(rule_file.rules):
            entry = str(raw_rule.get("id", f"#{i + 1}")) if isinstance(raw_rule, dict) else f"#{i + 1}"
            rule = _validate(detector_cls.rule_model, raw_rule, path, node, ("rules", i), entry, problems)
            if rule is None:
                continue
            line = _line_of(node, ("rules", i))
            if rule.id in rule_sites:
                problems.append(
                    RuleProblem(
                        str(path), line, rule.id, "id", f"duplicate rule id, first defined at {rule_sites[rule.id]}"
                    )
                )
                continue
            rule_sites[rule.id] = f"{path.name}:{line}"
            rules_by_detector.setdefault(rule_file.detector, []).append((rule, path, node, i))

    detectors: list[AnyDetector] = []
    configured: dict[str, AnyDetector] = {}
    all_rules: dict[str, Rule] = {}
    for name, entries in sorted(rules_by_detector.items()):
        detector_cls = REGISTRY[name]
        detector_settings, settings_path = settings.get(name, (detector_cls.settings_model(), entries[0][1]))
        rules = [r for r, *_ in entries]
        try:
            detector = detector_cls(detector_settings, rules, context)
        except ValueError as e:  # e.g. a model file missing or unreadable: the settings name it
            problems.append(RuleProblem(str(settings_path), None, None, "settings", str(e)))
            continue
        configured[name] = detector
        if any(r.status != "off" for r in rules):  # a detector whose rules are all off does not run
            detectors.append(detector)
        settings_json = detector_settings.model_dump_json() if check_examples else ""
        for rule, path, node, i in entries:
            all_rules[rule.id] = rule
            if check_examples:
                for message in _example_problems(detector, rule, settings_json, resources_digest):
                    problems.append(
                        RuleProblem(str(path), _line_of(node, ("rules", i, "examples")), rule.id, "examples", message)
                    )

    if problems:
        raise RuleSetError(problems)
    assert enforcement is not None
    return Ruleset(
        version=version,
        directory=directory,
        detectors=tuple(detectors),
        policy=Policy(enforcement, version),
        rules=all_rules,
        configured=configured,
    )


#: a rule's example problems by what decides them — its detector, the detector's settings, the rule, the data files
#: (the code is the process's own). Checking every rule's examples alone was three quarters of a load: a reload after
#: an edit checks the edited rules only. Emptied when full, like a cache.
_EXAMPLE_PROBLEMS: dict[tuple[str, str, str, str], tuple[str, ...]] = {}


def _example_problems(detector: AnyDetector, rule: Rule, settings_json: str, resources_digest: str) -> tuple[str, ...]:
    key = (detector.name, settings_json, rule.model_dump_json(), resources_digest)
    problems = _EXAMPLE_PROBLEMS.get(key)
    if problems is None:
        if len(_EXAMPLE_PROBLEMS) >= 4096:
            _EXAMPLE_PROBLEMS.clear()
        problems = _EXAMPLE_PROBLEMS[key] = tuple(detector.check_examples(rule))
    return problems


class RulesetWatcher:
    """Reloads the ruleset when its files change; a bad edit is reported and the running ruleset stays.

    ``poll()`` is cheap: it reads the files (3.8 MB with the claims model) only when their names, inodes, sizes,
    modification or change times moved since a look that found them settled (none changed in the two seconds
    before it); runtimes call it between events.
    """

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_rules_dir()
        self.current = load_ruleset(self.directory)
        self._digest: str | None = rules_digest(self.directory)  # None: load at the next look whatever the bytes
        self._stat: list[tuple[str, int, int, int, int]] | None = None  # of the last look, when settled
        self.last_error: RuleSetError | None = None

    def reload(self, metrics: Any, report: Callable[[str], None]) -> None:
        """Poll, count the outcome in ``metrics`` and say what happened through ``report``."""
        self.adopt(self.load_if_changed(), metrics, report)

    def poll(self) -> bool:
        """Swap in the new ruleset if the files changed and it loads; True if a swap happened."""
        fresh = self.load_if_changed()
        if fresh is not None:
            self.current = fresh  # atomic swap: readers see the old or the new ruleset, never a mix
        return fresh is not None

    def load_if_changed(self) -> Ruleset | None:
        """The files' ruleset if they changed since the last look and it loads; None if they did not, or if the
        edit is refused (``last_error`` then says why). Swaps nothing and never reads ``current``: a worker runs
        it in a thread while its event loop goes on deciding with the running ruleset (a load is a large part of
        a second of CPU), then ``adopt``s the result between steps. One call at a time."""
        try:
            looked = time.time_ns()
            # the change time too: a copy that keeps the source's modification time (cp -p, rsync -t) moves it
            stat = [
                (p.name, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns)
                for p in rule_files(self.directory)
                for s in [p.stat()]
            ]
            if stat == self._stat:
                return None
            digest = rules_digest(self.directory)  # read after the stat: a write in between moves it for next time
        except OSError:
            return None  # a file vanished mid-edit: look again next time
        settled = looked - max((max(m, c) for *_, m, c in stat), default=0) > SETTLED_NS
        self._stat = stat if settled else None
        if digest == self._digest:
            return None
        self._digest = digest
        try:
            fresh = load_ruleset(self.directory)
        except RuleSetError as e:
            self.last_error = e
            return None
        except OSError:  # a file gone mid-read: the next look tries again (another failure waits for an edit)
            self._digest, self._stat = None, None
            raise
        self.last_error = None
        return fresh

    def adopt(self, fresh: Ruleset | None, metrics: Any, report: Callable[[str], None]) -> None:
        """Swap in ``fresh`` (what ``load_if_changed`` returned), count the outcome in ``metrics`` and say what
        happened through ``report``."""
        if fresh is not None:
            self.current = fresh  # atomic swap: readers see the old or the new ruleset, never a mix
            metrics.ruleset_reloads.labels(result="ok").inc()
            metrics.set_ruleset(fresh.version)
            report(f"ruleset reloaded: {fresh.version}")
        elif self.last_error is not None:
            metrics.ruleset_reloads.labels(result="refused").inc()
            report(f"ruleset change refused, keeping {self.current.version}:\n{self.last_error}")
            self.last_error = None
