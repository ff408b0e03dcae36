"""Notebook hygiene: stored notebooks are clean; each rule fires on a notebook that breaks it."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

import notebooks as nbtools

REPO = Path(__file__).resolve().parents[1]
STORED = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def read(path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", STORED, ids=lambda p: p.name)
def test_stored_notebooks_are_clean(path):
    nb = read(path)
    assert nbtools.problems(nb, path.name) == []
    # Stored through the execute command's cleaner: cleaning again changes nothing.
    assert nbtools.clean(copy.deepcopy(nb)) == nb


def test_there_are_notebooks():
    assert STORED, "no notebooks found"


@pytest.fixture
def good():
    nb = read(STORED[0])
    assert nbtools.problems(nb) == []
    return nb


def first_code(nb):
    return next(c for c in nb["cells"] if c["cell_type"] == "code")


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def set_count(nb):
    code_cells(nb)[1]["execution_count"] = 7


def unrun_cell(nb):
    code_cells(nb)[-1]["execution_count"] = None


def empty_cell(nb):
    code_cells(nb)[0]["source"] = "   \n"


def widgets_metadata(nb):
    nb["metadata"]["widgets"] = {"state": {}}


def other_kernel(nb):
    nb["metadata"]["kernelspec"]["name"] = "conda-env-course-py"


def python_version(nb):
    nb["metadata"]["language_info"]["version"] = "3.11.7"


def execute_time(nb):
    code_cells(nb)[0]["metadata"]["ExecuteTime"] = {"end_time": "2026-01-01"}


def home_path(nb):
    first_code(nb)["outputs"].append(
        {"output_type": "stream", "name": "stdout", "text": "saved to /home/alice/runs\n"}
    )


def mac_path(nb):
    first_code(nb)["source"] = "open('/Users/bob/data.txt')"


def big_output(nb):
    first_code(nb)["outputs"].append(
        {"output_type": "stream", "name": "stdout", "text": "x" * (nbtools.MAX_OUTPUT_BYTES + 1)}
    )


def many_outputs(nb):
    for c in code_cells(nb)[:8]:
        c["outputs"].append({"output_type": "stream", "name": "stdout", "text": "y" * 250_000})


def stray_error(nb):
    first_code(nb)["outputs"].append(
        {"output_type": "error", "ename": "ValueError", "evalue": "boom", "traceback": []}
    )


def widget_output(nb):
    # what a tqdm.notebook bar stores (tqdm.notebook ignores TQDM_DISABLE)
    first_code(nb)["outputs"].append(
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {
                nbtools.WIDGET_MIME: {"model_id": "2564fd35", "version_major": 2},
                "text/plain": ["Loading weights:   0%|          | 0/103 [00:00<?, ?it/s]"],
            },
        }
    )


def loading_weights_text(nb):
    # the same bar as plain text on stderr, in a cell whose output is not even compared
    cell = first_code(nb)
    cell["metadata"]["tags"] = ["nbval-ignore-output"]
    cell["outputs"].append(
        {"output_type": "stream", "name": "stderr", "text": "Loading weights: 100%|█| 103/103\n"}
    )


def compared_cell(nb, text, tags=None):
    cell = next(c for c in code_cells(nb) if not c.get("metadata", {}).get("tags"))
    if tags:
        cell["metadata"]["tags"] = tags
    cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": text}]
    return cell


def rounding_error(nb):
    compared_cell(nb, "every pair agrees (spread 2.5e-15)\n")


RULES = [
    (set_count, "execution counts"),
    (unrun_cell, "execution counts"),
    (empty_cell, "is empty"),
    (widgets_metadata, "notebook metadata has ['widgets']"),
    (other_kernel, "kernelspec name is 'conda-env-course-py'"),
    (python_version, "language_info records a Python version"),
    (execute_time, "metadata has ['ExecuteTime']"),
    (home_path, "absolute path or user name '/home/alice'"),
    (mac_path, "absolute path or user name '/Users/bob'"),
    (big_output, "kB output"),
    (many_outputs, "outputs total"),
    (stray_error, "stores an error but has no raises-exception tag"),
    (widget_output, "stores a widget or a 'Loading weights' progress bar"),
    (loading_weights_text, "stores a widget or a 'Loading weights' progress bar"),
    (rounding_error, "prints 2.5e-15"),
]


@pytest.mark.parametrize("breaks, message", RULES, ids=[r[0].__name__ for r in RULES])
def test_each_rule_fires(good, breaks, message):
    breaks(good)
    found = nbtools.problems(good, "fixture.ipynb")
    assert len(found) == 1 and message in found[0], found


def test_user_name_rule(good, monkeypatch):
    monkeypatch.setattr(nbtools.getpass, "getuser", lambda: "alicesmith")
    first_code(good)["source"] = "# written by alicesmith"
    found = nbtools.problems(good)
    assert len(found) == 1 and "the user name 'alicesmith' appears" in found[0]
    monkeypatch.setattr(nbtools.getpass, "getuser", lambda: "root")
    first_code(good)["source"] = "# the square root of two"
    assert nbtools.problems(good) == []


def test_an_expected_error_is_allowed(good):
    cell = first_code(good)
    cell["metadata"]["tags"] = ["raises-exception"]
    cell["outputs"] = [
        {"output_type": "error", "ename": "ValueError", "evalue": "x", "traceback": []}
    ]
    assert nbtools.problems(good) == []


def test_clean_restores_canonical_metadata(good):
    reference = copy.deepcopy(good)
    widgets_metadata(good)
    python_version(good)
    execute_time(good)
    good["cells"][0]["id"] = "f3b2a9"
    code_cells(good)[0]["outputs"].append(
        {
            "output_type": "error",
            "ename": "ValueError",
            "evalue": "bad",
            "traceback": ["\x1b[0;31mValueError\x1b[0m", "File /home/alice/x.py, line 3"],
        }
    )
    cleaned = nbtools.clean(good)
    assert cleaned["metadata"] == reference["metadata"]
    assert [c["id"] for c in cleaned["cells"]] == [c["id"] for c in reference["cells"]]
    assert "ExecuteTime" not in code_cells(cleaned)[0]["metadata"]
    assert code_cells(cleaned)[0]["outputs"][-1]["traceback"] == ["ValueError: bad"]


def test_check_command():
    out = subprocess.run(
        [sys.executable, str(REPO / "tools" / "notebooks.py"), "check"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0 and "all notebooks clean" in out.stdout, out.stdout + out.stderr


def test_kernel_environment_is_applied():
    # conftest.py applies KERNEL_ENV, so nbval's kernels see what the execute command saw.
    import os

    for key, value in nbtools.KERNEL_ENV.items():
        assert os.environ[key] == value, key


@pytest.mark.parametrize(
    "text, tags, fires",
    [
        ("spread 2.5e-15\n", None, True),
        ("max |diff| = 3E-10, fine\n", None, True),
        ("result 1.2e-7 (float32)\n", None, False),  # above TINY: a real measured size
        ("spread below 1e-12\n", None, False),  # a bound, not a measurement
        ("max |ours - reference| < 1e-10: True\n", None, False),
        ("BertConfig(eps=1e-12)\n", None, False),  # a constant
        ("spread 2.5e-15\n", ["nbval-ignore-output"], False),  # not compared
        ("id e-15 and 1e-15x are not numbers\n", None, False),
    ],
)
def test_tiny_number_rule(good, text, tags, fires):
    compared_cell(good, text, tags)
    found = nbtools.tiny_numbers(good, "fixture.ipynb")
    assert bool(found) == fires, found


def test_tiny_number_allow_list_is_per_notebook(good):
    compared_cell(good, "  layer 1 |dL/dW| 1.16e-13 -> 1.16e-13\n")
    assert nbtools.tiny_numbers(good, "06_backpropagation.ipynb") == []
    assert len(nbtools.tiny_numbers(good, "05_softmax_and_cross_entropy.ipynb")) == 2
    assert all(reason for _, _, reason in nbtools.ALLOWED_TINY)


def test_pin_kernel_env_overrides_a_hostile_shell():
    hostile = {
        "MPLBACKEND": "Agg",
        "COURSE_PROFILE": "gpu",
        "COURSE_DEVICE": "cuda",
        "COURSE_COMPILE": "1",
        "COURSE_DATA_DIR": "/nowhere",
        "COURSE_REQUIRE_SEED": "1",
        "OMP_NUM_THREADS": "8",
        "TORCH_LOGS": "+dynamo",
        "PYTHONWARNINGS": "error",
        "TQDM_DISABLE": "0",
        "PYTHONHASHSEED": "random",
        "HOME": "/home/x",
    }
    env = dict(hostile)
    dropped = nbtools.pin_kernel_env(env)
    assert {k: env[k] for k in nbtools.KERNEL_ENV} == nbtools.KERNEL_ENV
    assert sorted(dropped) == [
        "COURSE_COMPILE",
        "COURSE_DATA_DIR",
        "PYTHONWARNINGS",
        "TORCH_LOGS",
    ]
    assert env["COURSE_REQUIRE_SEED"] == "1" and env["HOME"] == "/home/x"  # not outputs
    assert env["MPLBACKEND"] == "module://matplotlib_inline.backend_inline"
