"""pipeline/heap.py: a command settles its heap once loaded; library callers (this test session) never do."""

import gc
import subprocess
import sys
from pathlib import Path

from pipeline.heap import THRESHOLDS, settle_heap

REPO = Path(__file__).resolve().parent.parent


def test_settling_is_a_no_op_for_a_process_that_did_not_say_it_owns_itself():
    before = gc.get_threshold(), gc.get_freeze_count()
    settle_heap()
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


def test_a_command_process_freezes_what_it_loaded_and_collects_less_often():
    probe = (
        "import gc\n"
        "from pipeline.heap import own_process, settle_heap\n"
        "kept = [[i] for i in range(1000)]\n"
        "own_process(); settle_heap()\n"
        "print(gc.get_threshold(), gc.get_freeze_count() >= 1000)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[0] == f"{THRESHOLDS} True"
