"""tools/pack.py: the student pack is deterministic, complete, holds no solution, and its
notebook 00 runs from the unpacked folder with the unpacked course_lib and data."""

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import course
import nbformat
import pack
import pytest
from nbclient import NotebookClient

import notebooks as nbtools

REPO = Path(__file__).resolve().parents[1]
TOP = pack.TOP + "/"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return pack.build(tmp_path_factory.mktemp("pack") / "student-pack.zip")


@pytest.fixture(scope="module")
def entries(built):
    with zipfile.ZipFile(built) as zf:
        return {i.filename.removeprefix(TOP): zf.read(i) for i in zf.infolist()}


@pytest.fixture(scope="module")
def unpacked(built, tmp_path_factory):
    target = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(built) as zf:
        zf.extractall(target)
    return target / pack.TOP


def code_sources(blob: bytes) -> list[str]:
    nb = json.loads(blob)
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def test_two_builds_are_byte_identical(built, tmp_path):
    again = pack.build(tmp_path / "again.zip")
    assert again.read_bytes() == built.read_bytes()
    with zipfile.ZipFile(built) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names) and all(n.startswith(TOP) for n in names)
    assert {i.date_time for i in infos} == {pack.ZIP_TIME}


def test_the_pack_holds_what_a_learner_needs(entries):
    for rel in [
        "INSTALL.txt",
        "pyproject.toml",
        "constraints.txt",
        "course_map.toml",
        "LICENSE",
        "tools/course.py",
        "tools/notebooks.py",
        "conftest.py",
        "course_lib/__init__.py",
        "course_lib/check.py",
        "course_lib/exercises/nb00.py",  # the answer key: the check cells call it
        "data/manifest.json",
        "data/models/manifest.json",
    ]:
        assert rel in entries, rel
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in entries)
    for top in ("course_lib", "bench"):  # bench/results: notebooks 12 and 13 read it
        shipped = {n for n in entries if n.startswith(top + "/") and n.endswith(".py")}
        assert shipped == {p.relative_to(REPO).as_posix() for p in python_files(top)}
    assert "bench/results/inference.jsonl" in entries
    install = entries["INSTALL.txt"].decode()
    for text in (
        "python3 tools/course.py lab",
        "python3 tools/course.py test",
        "Python 3.10",
        "notebooks/00_setup_and_doctor.ipynb",
        "course_lib/exercises/",
    ):
        assert text in install


def python_files(top):
    return [p for p in (REPO / top).rglob("*.py") if "__pycache__" not in p.parts]


def test_every_file_the_data_manifests_list_is_packed_intact(entries):
    manifest = json.loads(entries["data/manifest.json"])
    listed = {"data/" + rel: info["sha256"] for rel, info in manifest["files"].items()}
    models = json.loads(entries["data/models/manifest.json"])["models"]
    for name, entry in models.items():
        for rel, info in entry["files"].items():
            listed[f"data/models/{name}/{rel}"] = info["sha256"]
    assert len(listed) > 20
    for rel, sha in listed.items():
        assert rel in entries, rel
        assert hashlib.sha256(entries[rel]).hexdigest() == sha, rel


def test_the_notebooks_are_student_versions_without_solution_code(entries):
    stored = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    packed = sorted(n for n in entries if n.startswith("notebooks/"))
    assert packed == [f"notebooks/{p.name}" for p in stored]
    for path in stored:
        blob = entries[f"notebooks/{path.name}"]
        code = code_sources(blob)
        text = "".join(code)
        assert nbtools.BEGIN_SOLUTION not in text and nbtools.END_SOLUTION not in text
        assert all(c.get("outputs", []) == [] for c in json.loads(blob)["cells"])
        solutions = [
            block.split(nbtools.END_SOLUTION)[0]
            for src in code_sources(path.read_bytes())
            for block in src.split(nbtools.BEGIN_SOLUTION)[1:]
        ]
        assert text.count(nbtools.STUB) == len(solutions), path.name
        for body in solutions:
            assert body.strip("\n ") not in text, path.name


def test_the_unpacked_folder_passes_the_test_commands_lint(unpacked):
    for args in (["check"], ["format", "--check"]):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "ruff",
                *args,
                *(p for p in course.LINT_PATHS if (unpacked / p).exists()),
            ],
            cwd=unpacked,
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


def test_notebook_00_runs_from_the_unpacked_folder(unpacked, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(unpacked))  # the kernel imports the unpacked course_lib
    nb = nbformat.read(unpacked / "notebooks" / "00_setup_and_doctor.ipynb", as_version=4)
    probe = (
        "import sys\nimport course_lib\nfrom course_lib import data\n"
        "print(course_lib.__file__)\nprint(data.data_dir())\nprint(sys.prefix)"
    )
    nb.cells.append(nbformat.v4.new_code_cell(probe))
    NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(unpacked / "notebooks")}},
    ).execute()  # raises CellExecutionError on the first cell that fails
    lib, data_dir, prefix = "".join(o["text"] for o in nb.cells[-1].outputs).split("\n")[:3]
    assert Path(lib).resolve().is_relative_to(unpacked.resolve())
    assert Path(data_dir).resolve() == (unpacked / "data").resolve()
    assert prefix == sys.prefix  # the venv's Python runs the kernel
    verdicts = [
        "".join(o.get("text", "") for o in c.outputs)
        for c in nb.cells
        if c.cell_type == "code" and nbtools.is_checker(c.source)
    ]
    assert verdicts and all(": not yet." in v for v in verdicts), verdicts


def test_the_packs_own_tests_pass_from_the_unpacked_folder(unpacked):
    env = {**os.environ, "PYTHONPATH": str(unpacked)}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "tests"],
        cwd=unpacked,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " 3 passed" in out.stdout and "configfile: pytest.ini" in out.stdout
