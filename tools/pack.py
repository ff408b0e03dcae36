"""The student pack: one zip with everything a learner needs, solutions stubbed.

    python tools/pack.py [--out FILE]     # default: build/student-pack.zip

For a learning platform or a USB stick. Unpacked, the folder works like a clone of the course:
`python3 tools/course.py lab` opens it and `python3 tools/course.py test` tests it (each sets up
its own `.venv/` on first use). It holds:

- notebooks/: the student versions (tools/notebooks.py's `students` machinery: every solution
  block stubbed with a NotImplementedError, outputs cleared);
- course_lib/, with the answer key course_lib/exercises/ (the check cells call it, so it stays;
  it holds the reference solutions, which INSTALL.txt says);
- data/: every shipped file, checked against data/manifest.json and data/models/manifest.json
  while packing (a damaged or missing file stops the build);
- bench/: notebooks 12 and 13 read the measurements in bench/results/, and the notebooks' text
  points to its scripts and reports (400 kB in all);
- course_map.toml, pyproject.toml, constraints.txt, README.md, LICENSE, THIRD_PARTY.md,
  environment.yml, Makefile, conftest.py, tools/course.py, tools/notebooks.py (conftest.py
  imports it) and tools/jupyter/ (the lab's settings);
- written here: INSTALL.txt, pytest.ini (see PYTEST_INI), ruff.toml (see RUFF_TOML),
  tests/test_student_pack.py.

The zip is deterministic: sorted entries, fixed timestamps and permissions, one compression
level, so two builds from the same files are byte-identical. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import notebooks as nbtools  # noqa: E402  (the students machinery, reused)

DEFAULT_OUT = REPO / "build" / "student-pack.zip"
TOP = "llm-course"  # the folder the zip unpacks to
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can record
FILE_MODE = 0o100644
EXEC_MODE = 0o100755
COMPRESS_LEVEL = 9

# Copied as they are, relative to the repository root.
FILES = [
    "README.md",
    "LICENSE",  # pyproject.toml's license-files: `pip install -e .` needs it
    "THIRD_PARTY.md",
    "pyproject.toml",
    "constraints.txt",
    "course_map.toml",
    "environment.yml",
    "Makefile",
    "conftest.py",
    "tools/course.py",
    "tools/notebooks.py",
]
TREES = ["course_lib", "data", "bench", "tools/jupyter"]
EXECUTABLE = {"tools/course.py"}
# Never packed (what .gitignore keeps out of the repository, and editor and OS litter).
SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".ruff_cache", ".hypothesis"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".tmp", ".egg-info")
SKIP_NAMES = {".DS_Store"}

INSTALL_TXT = """\
LLMs from the ground up: the student pack (course_lib {version})
================================================================

You need Python 3.10 or newer, on Linux x86-64 or macOS on Apple silicon (Windows: use WSL2, or
conda with environment.yml; see README.md, "Other set-ups"). In a terminal, in this folder:

    python3 tools/course.py lab     # 1. open the course in JupyterLab
    python3 tools/course.py test    # 2. check that every notebook runs on this machine

The first command sets up a virtual environment in .venv/ inside this folder and installs the
course with the versions pinned in constraints.txt. That first run downloads PyTorch and the
other packages (about 1 GB, a few minutes; it needs the internet once); later runs start at once.

Start with notebooks/00_setup_and_doctor.ipynb: it checks your machine and tells you how long
each notebook will take on it. Then go in order, 01 to 15.

Exercises: a function whose body is
    raise NotImplementedError("Exercise: replace this line with your code")
is yours to write. The cell after it checks your answer: "not yet" until you have written it,
a hint that names the mistake when an answer is wrong, "Well done!" when it is right.

Note: course_lib/exercises/ is the answer key that those check cells call. It holds the
reference solutions; look there only after you have tried.

README.md describes the whole course. In this pack the notebooks are the student versions and
`test` runs each of them top to bottom (it does not compare outputs, which the student versions
do not store), checks the shipped data and lints the code.
"""

# The student notebooks store no outputs, so strict nbval (pyproject.toml's settings, which a
# pytest.ini overrides) would fail every cell that prints. In the pack, `course.py test` runs
# each notebook with --nbval-lax: every cell must run without an error.
PYTEST_INI = """\
# The student pack's test settings (written by tools/pack.py; they take precedence over
# pyproject.toml's). The student notebooks store no outputs, so nbval runs them in lax mode:
# every cell must run without an error, and no output is compared.
[pytest]
testpaths = tests notebooks
addopts = -p no:cacheprovider --nbval-lax --nbval-current-env --nbval-cell-timeout 120
    --durations 10
norecursedirs = .* build runs *.egg-info __pycache__
"""

# The student notebooks hold the learner's own code, which is theirs to write as they like; and
# the stubbed versions that the students machinery writes do not pass the course's lint (an
# import that only a solution used, a cell that ends in a blank line). So in the pack, ruff (and
# so `course.py test`) leaves notebooks/ alone; everything else keeps pyproject.toml's settings.
RUFF_TOML = """\
# The student pack's ruff settings (written by tools/pack.py): pyproject.toml's, except that the
# notebooks, which hold your own code, are not linted.
extend = "pyproject.toml"
extend-exclude = ["notebooks"]
force-exclude = true
"""

PACK_TEST = '''\
"""The student pack: the shipped data is intact and course_lib is this folder's copy."""

from pathlib import Path

from course_lib import data, models

ROOT = Path(__file__).resolve().parents[1]


def test_course_lib_is_this_folders_copy():
    assert Path(data.__file__).resolve().is_relative_to(ROOT)


def test_every_data_file_matches_the_manifest():
    assert data.verify_all()  # raises on a missing or changed file


def test_every_shipped_model_matches_its_manifest():
    names = sorted(models.load_manifest()["models"])
    assert names
    for name in names:
        models.verify_model(name)
'''


def skipped(rel: Path) -> bool:
    parts = rel.parts
    return (
        any(p in SKIP_DIRS or p.endswith(".egg-info") for p in parts[:-1])
        or parts[-1] in SKIP_NAMES
        or parts[-1].endswith(SKIP_SUFFIXES)
    )


def tree_files(top: str) -> list[str]:
    """Every file under REPO/top (relative, '/'-separated), litter skipped, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(REPO / top):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for name in filenames:
            rel = (Path(dirpath) / name).relative_to(REPO)
            if not skipped(rel):
                found.append(rel.as_posix())
    return sorted(found)


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def check_data(entries: dict[str, bytes]) -> None:
    """Every file that data/manifest.json and data/models/manifest.json list is packed and has
    its sha256; SystemExit naming each one that is not."""
    bad = []
    listed = {}
    manifest = json.loads(entries["data/manifest.json"])
    for rel, info in manifest["files"].items():
        listed["data/" + rel] = info["sha256"]
    models = json.loads(entries.get("data/models/manifest.json", b'{"models": {}}'))
    for name, entry in models["models"].items():
        for rel, info in entry["files"].items():
            listed[f"data/models/{name}/{rel}"] = info["sha256"]
    for path, expected in sorted(listed.items()):
        if path not in entries:
            bad.append(f"{path} is listed in a manifest but missing")
        elif sha256(entries[path]) != expected:
            bad.append(f"{path}: sha256 does not match its manifest")
    if bad:
        raise SystemExit("refusing to pack damaged data:\n  " + "\n  ".join(bad))


def student_notebooks() -> dict[str, bytes]:
    """notebooks/NN_*.ipynb -> the student version's bytes, from the students machinery."""
    paths = nbtools.notebook_paths()
    if not paths:
        raise SystemExit(f"no notebooks found in {nbtools.NOTEBOOKS}")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        written = {p.name: p for p in nbtools.write_students(paths, Path(tmp))}
        for path in paths:
            if path.name in written:
                blob = written[path.name].read_bytes()
            else:  # no exercise: write_students skips it; ship it with its outputs cleared too
                nb = nbtools.student_version(json.loads(path.read_text(encoding="utf-8")))
                blob = (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode()
            cells = json.loads(blob)["cells"]
            code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
            if nbtools.BEGIN_SOLUTION in code or nbtools.END_SOLUTION in code:
                raise SystemExit(f"{path.name}: the student version still holds a solution")
            out["notebooks/" + path.name] = blob
    return out


def version() -> str:
    text = (REPO / "course_lib" / "__init__.py").read_text(encoding="utf-8")
    m = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    return m.group(1) if m else "unknown"


def contents() -> dict[str, bytes]:
    """Every entry of the pack (path inside the top folder -> bytes)."""
    entries: dict[str, bytes] = {}
    for rel in FILES:
        path = REPO / rel
        if not path.is_file():
            raise SystemExit(f"{rel} is missing from the repository")
        entries[rel] = path.read_bytes()
    for top in TREES:
        for rel in tree_files(top):
            entries[rel] = (REPO / rel).read_bytes()
    entries.update(student_notebooks())
    entries["INSTALL.txt"] = INSTALL_TXT.format(version=version()).encode()
    entries["pytest.ini"] = PYTEST_INI.encode()
    entries["ruff.toml"] = RUFF_TOML.encode()
    entries["tests/test_student_pack.py"] = PACK_TEST.encode()
    check_data(entries)
    return entries


def write_zip(entries: dict[str, bytes], out: Path) -> None:
    """A deterministic zip: sorted entries, fixed time, mode and compression; written
    atomically."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for rel in sorted(entries):
            info = zipfile.ZipInfo(f"{TOP}/{rel}", date_time=ZIP_TIME)
            info.create_system = 3  # Unix, so that the modes below are honoured
            info.external_attr = (EXEC_MODE if rel in EXECUTABLE else FILE_MODE) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, entries[rel], compresslevel=COMPRESS_LEVEL)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(out)


def build(out: Path = DEFAULT_OUT) -> Path:
    write_zip(contents(), out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pack.py", description="Build the student pack (a deterministic zip)."
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the zip to write")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = build(args.out.resolve())
    with zipfile.ZipFile(out) as zf:
        n = len(zf.infolist())
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {n} files) "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
