"""livewatch installs like a Python package: the wheel built from this repository, installed (not editable)
into a fresh virtualenv, runs the demo and a replay from a directory outside the repository with the rules
it ships, and gives the same alerts and actions as the checkout; ``LIVEWATCH_RULES_DIR`` still overrides.

How the fresh virtualenv gets its dependencies: the wheel is installed with ``--no-deps`` and a ``.pth``
file appends this test run's site-packages (the pinned dependencies `make install` put there) to the new
environment's ``sys.path``. Reinstalling scikit-learn, numpy, faust… would take minutes and a network on
every run. A ``.pth`` line only adds a directory: the ``.pth`` files in it, such as the editable install's
import hook that maps ``pipeline`` to the checkout, are not run, so ``pipeline``, ``detectors`` and
``schemas`` come from the wheel (asserted below). ``pip check`` confirms that the dependencies seen that
way satisfy the wheel's requirements. The wheel is built the way ``pip install .`` builds it, in pip's
isolated build environment (setuptools from the package index, like `make install`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.ruleset import load_ruleset
from tests.conftest import REPO

TOP_LEVEL_OUTPUTS = {"build", "dist", "out"}


def _source_copy(dst: Path) -> Path:
    """The checkout without what is not source (.git, .venv, caches, build output): built in place,
    setuptools would leave build/ and *.egg-info in the repository, and stale files in build/ end up in
    the wheel."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        top = Path(directory) == REPO
        return {
            n
            for n in names
            if n.startswith(".") or n == "__pycache__" or n.endswith(".egg-info") or (top and n in TOP_LEVEL_OUTPUTS)
        }

    shutil.copytree(REPO, dst, ignore=ignore)
    return dst


def _run(cmd: list[str | Path], **kwargs) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=240, **kwargs)
    assert r.returncode == 0, f"{cmd} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


@dataclass
class Installed:
    venv: Path
    site_packages: Path
    workdir: Path  # outside the repository
    env: dict[str, str]

    def livewatch(self, *args: str | Path, env: dict[str, str] | None = None) -> str:
        return _run([self.venv / "bin" / "livewatch", *args], cwd=self.workdir, env=env or self.env).stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", _source_copy(tmp / "src"), "-w", dist])
    (wheel,) = dist.glob("livewatch-*.whl")

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--quiet", wheel])
    site_packages = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    (site_packages / "_livewatch_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "check"])

    # Nothing of this session's configuration: no LIVEWATCH_* settings, no PYTHONPATH into the checkout.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEWATCH_", "PYTHON")) and k != "VIRTUAL_ENV"}
    workdir = tmp / "elsewhere"
    workdir.mkdir()
    return Installed(venv, site_packages, workdir, env)


def test_the_installed_package_is_the_wheel_with_its_rules(installed: Installed):
    code = "import pipeline, detectors, schemas; print(pipeline.__file__, detectors.__file__, schemas.__file__)"
    where = _run(
        [installed.venv / "bin" / "python", "-c", code], cwd=installed.workdir, env=installed.env
    ).stdout.split()
    assert all(Path(p).is_relative_to(installed.site_packages) for p in where), where
    # the compiled parts (every detectors/*.pyx: the claims model's scoring kernel, the flood detector's comment
    # window, the normaliser) are built into the wheel (setup.py) and imported from it
    compiled = sorted(p.stem for p in (REPO / "detectors").glob("*.pyx"))
    assert compiled == ["_claims_kernel", "_comment_window", "_normalize"]
    for module in compiled:
        kernel = _run(
            [installed.venv / "bin" / "python", "-c", f"from detectors import {module} as k; print(k.__file__)"],
            cwd=installed.workdir,
            env=installed.env,
        ).stdout.strip()
        assert Path(kernel).is_relative_to(installed.site_packages) and kernel.endswith(".so"), kernel

    out = installed.livewatch("rules", "check")
    shipped = installed.site_packages / "pipeline" / "rules"
    checkout = load_ruleset(REPO / "rules", check_examples=False)
    # same version = same manifest and the same digest of every rule and model file
    assert out.startswith(f"OK: ruleset {checkout.version} in {shipped} ("), out
    assert {p.name for p in shipped.iterdir()} == {p.name for p in (REPO / "rules").iterdir()}


def test_the_installed_demo_and_replay_give_what_the_checkout_gives(
    installed: Installed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    feed = installed.livewatch("demo", "--fast", "--out", "demo")
    assert "ACTION SUSPEND" in feed and "ALERT" in feed
    assert f"ruleset {load_ruleset(REPO / 'rules', check_examples=False).version}" in feed
    recording = installed.workdir / "prices_ai_labels.jsonl"
    shutil.copyfile(REPO / "examples" / "prices_ai_labels.jsonl", recording)
    summary = installed.livewatch("replay", recording.name, "--quiet", "--no-progress", "--out", "replay")
    assert "dead letters: none" in summary

    for name in [k for k in os.environ if k.startswith("LIVEWATCH_")]:
        monkeypatch.delenv(name)
    assert main(["demo", "--fast", "--out", str(tmp_path / "demo")]) == 0
    assert main(["replay", str(recording), "--quiet", "--no-progress", "--out", str(tmp_path / "replay")]) == 0
    for run in ("demo", "replay"):
        for name in ("alerts.jsonl", "actions.jsonl"):
            got = (installed.workdir / run / name).read_text(encoding="utf-8")
            assert got.strip(), f"{run}/{name} is empty"
            assert got == (tmp_path / run / name).read_text(encoding="utf-8"), f"{run}/{name} differs"


def test_livewatch_rules_dir_overrides_the_shipped_rules(installed: Installed, tiny_rules: Path):
    out = installed.livewatch("rules", "check", env={**installed.env, "LIVEWATCH_RULES_DIR": str(tiny_rules)})
    assert out.startswith("OK: ruleset ") and f" in {tiny_rules} (" in out and "false_claims: 2 rules" in out
