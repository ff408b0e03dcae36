"""The stored outputs do not depend on the caller's shell: a notebook passes strict nbval with
hostile values of everything its outputs could depend on exported together."""

import os
import subprocess
import sys
from pathlib import Path

import notebooks as nbtools

REPO = Path(__file__).resolve().parents[1]
# Values a server, a CI image or a learner's shell may export, each of which changed a stored
# output before the kernel environment pinned it: MPLBACKEND=Agg stores no figure, the profile and
# device change sizes and the doctor's verdicts, threads change the last bits of sums, a data
# directory and offline mode change what loads, warnings-as-errors stops a cell.
HOSTILE = {
    "MPLBACKEND": "Agg",
    "COURSE_PROFILE": "gpu",
    "COURSE_DEVICE": "cuda",
    "COURSE_COMPILE": "1",
    "COURSE_DATA_DIR": "/nonexistent-course-data",
    "COURSE_OFFLINE": "1",
    "COURSE_MINILM_DIR": "/nonexistent-minilm",
    "OMP_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
    "OPENBLAS_NUM_THREADS": "2",
    "TQDM_DISABLE": "0",
    "PYTHONHASHSEED": "random",
    "PYTHONWARNINGS": "error",
    "TORCH_LOGS": "+dynamo",
    "TOKENIZERS_PARALLELISM": "true",
}
# Loads the shipped corpus, draws a figure and prints sums over many numbers.
NOTEBOOK = "notebooks/05_softmax_and_cross_entropy.ipynb"


def test_hostile_values_are_all_pinned_or_dropped():
    env = dict(HOSTILE)
    nbtools.pin_kernel_env(env)
    for key, value in HOSTILE.items():
        assert env.get(key) != value, key


def test_a_notebook_passes_under_a_hostile_environment():
    out = subprocess.run(
        # nbval runs the cells in order: no shuffling plugin, no workers
        [sys.executable, "-m", "pytest", NOTEBOOK, "-q", "-p", "no:xdist", "-p", "no:randomly"],
        capture_output=True,
        text=True,
        env={**os.environ, **HOSTILE},
        cwd=REPO,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout
