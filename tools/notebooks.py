"""Executing notebooks and keeping them clean: the only writer of stored outputs.

    python tools/notebooks.py execute [notebooks/NN_name.ipynb ...]   # default: all of them
    python tools/notebooks.py check   [notebooks ...]                  # hygiene report
    python tools/notebooks.py students [notebooks ...] [--out DIR]     # student versions

(`python3 tools/course.py execute` runs the first inside the course's virtual environment.)

`execute` formats the notebooks with ruff, runs each top to bottom in a fresh kernel in the
`ci` profile with exactly the environment that nbval gets (KERNEL_ENV, also applied by the
repo's conftest.py), cleans the metadata, writes the notebook, and records the measured run
time in the course map. Stored outputs are the reference that strict nbval compares against,
so they must never come from anywhere else.
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"

# The kernel environment for stored outputs and for nbval alike (conftest.py applies it).
KERNEL_ENV = {
    "COURSE_PROFILE": "ci",  # smallest sizes, one torch thread
    "COURSE_DEVICE": "cpu",  # stored outputs come from the CPU, whatever the machine has
    "TQDM_DISABLE": "1",  # progress bars are for people; their timings would break nbval
    "PYTHONHASHSEED": "0",  # stable set and dict-of-str ordering
    "IPYKERNEL_CELL_NAME": "<IPY-INPUT>",  # stable file name in warnings and tracebacks
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # silences the debugger's frozen-modules note
    "JUPYTER_PLATFORM_DIRS": "1",  # silences jupyter_core's path deprecation warning
}

MAX_OUTPUT_BYTES = 300_000  # one output (a figure is 20-80 kB)
MAX_NOTEBOOK_OUTPUT_BYTES = 1_500_000  # all outputs of one notebook
ALLOWED_NB_METADATA = {"kernelspec", "language_info"}
ALLOWED_CELL_METADATA = {"tags"}
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
}
# Absolute paths that give away a machine or a person.
PATH_PATTERNS = [
    r"/home/[A-Za-z0-9_.-]+",
    r"/Users/[A-Za-z0-9_.-]+",
    r"/root/",
    r"[A-Za-z]:\\\\Users\\\\",
    r"/tmp/ipykernel_\d+",
    r"/private/var/folders/",
]
COMMON_USER_NAMES = {"root", "runner", "user", "jovyan", "ubuntu", "admin", "vscode"}


def notebook_paths(args: list[str] | None = None) -> list[Path]:
    if args:
        return [Path(a).resolve() for a in args]
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def clean(nb: dict) -> dict:
    """Canonical metadata, tags-only cell metadata and stable cell ids (outputs untouched)."""
    nb["metadata"] = {"kernelspec": dict(KERNELSPEC), "language_info": dict(LANGUAGE_INFO)}
    nb["nbformat"], nb["nbformat_minor"] = 4, 5
    for i, cell in enumerate(nb["cells"]):
        tags = cell.get("metadata", {}).get("tags")
        cell["metadata"] = {"tags": tags} if tags else {}
        cell["id"] = f"c{i:03d}"
        for out in cell.get("outputs", []):
            out.pop("transient", None)
            if out.get("output_type") == "error":
                # Frames name files by absolute path; nbval compares only the exception's
                # type and value, and a reader wants the message, so keep just that.
                out["traceback"] = [f"{out['ename']}: {out['evalue']}"]
    return nb


def _output_bytes(out: dict) -> int:
    return len(json.dumps(out))


def problems(nb: dict, name: str = "notebook") -> list[str]:
    """Every way a stored notebook breaks the course's hygiene rules (empty list: clean)."""
    found = []
    code = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    counts = [c.get("execution_count") for c in code]
    if counts != list(range(1, len(code) + 1)):
        found.append(
            f"{name}: execution counts {counts[:10]} are not 1..{len(code)}: "
            "not one top-to-bottom run by the execute command"
        )
    for i, c in enumerate(code):
        if not "".join(c.get("source", "")).strip():
            found.append(f"{name}: code cell {i + 1} is empty")
    extra = set(nb.get("metadata", {})) - ALLOWED_NB_METADATA
    if extra:
        found.append(f"{name}: notebook metadata has {sorted(extra)}")
    ks = nb.get("metadata", {}).get("kernelspec", {})
    if ks.get("name") != "python3":
        found.append(f"{name}: kernelspec name is {ks.get('name')!r}, expected 'python3'")
    if "version" in nb.get("metadata", {}).get("language_info", {}):
        found.append(f"{name}: language_info records a Python version")
    for i, c in enumerate(nb.get("cells", [])):
        extra = set(c.get("metadata", {})) - ALLOWED_CELL_METADATA
        if extra:
            found.append(f"{name}: cell {i} metadata has {sorted(extra)}")
    text = json.dumps(nb, ensure_ascii=False)
    for pat in PATH_PATTERNS + [re.escape(str(REPO)), re.escape(sys.prefix)]:
        m = re.search(pat, text)
        if m:
            found.append(f"{name}: absolute path or user name {m.group(0)!r}")
    user = getpass.getuser()
    if len(user) >= 3 and user.lower() not in COMMON_USER_NAMES:
        if re.search(rf"\b{re.escape(user)}\b", text):
            found.append(f"{name}: the user name {user!r} appears")
    total = 0
    for i, c in enumerate(code):
        tags = c.get("metadata", {}).get("tags", [])
        for out in c.get("outputs", []):
            size = _output_bytes(out)
            total += size
            if size > MAX_OUTPUT_BYTES:
                found.append(f"{name}: code cell {i + 1} has a {size // 1000} kB output")
            if out.get("output_type") == "error" and "raises-exception" not in tags:
                found.append(
                    f"{name}: code cell {i + 1} stores an error but has no raises-exception tag"
                )
    if total > MAX_NOTEBOOK_OUTPUT_BYTES:
        found.append(f"{name}: outputs total {total // 1000} kB")
    return found


BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: replace this line with your code")'


def stub_solutions(source: str, where: str = "cell") -> str:
    """The source with every solution block replaced by a stub that raises NotImplementedError.

    A block runs from a `### BEGIN SOLUTION` line to a `### END SOLUTION` line and must sit
    inside a function body (indented), so that the stubbed cell still runs: only calling the
    function raises, and the checker turns that into "not yet".
    """
    out, inside, indent = [], False, ""
    for n, line in enumerate(source.splitlines(keepends=True), start=1):
        stripped = line.strip()
        if stripped == BEGIN_SOLUTION:
            if inside:
                raise ValueError(f"{where}, line {n}: a solution block opens inside another")
            indent = line[: len(line) - len(line.lstrip())]
            if not indent:
                raise ValueError(
                    f"{where}, line {n}: a solution block must sit inside a function body"
                )
            inside = True
            out.append(f"{indent}{STUB}\n")
        elif stripped == END_SOLUTION:
            if not inside:
                raise ValueError(f"{where}, line {n}: {END_SOLUTION} without {BEGIN_SOLUTION}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN_SOLUTION} is never closed")
    return "".join(out)


CHECK_CALL = re.compile(r"(?<![\w.])check\(")  # check(...), not gradcheck( or x.check(


def is_checker(source: str) -> bool:
    """Whether a cell calls course_lib.check's check(...)."""
    return bool(CHECK_CALL.search(source))


def _solution_span(lines: list[str]) -> tuple[int, int, str]:
    begin = next(i for i, ln in enumerate(lines) if ln.strip() == BEGIN_SOLUTION)
    end = next(i for i, ln in enumerate(lines) if ln.strip() == END_SOLUTION)
    return begin, end, lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]


def exercise_variants(
    nb: dict, variants: dict[str, list[str]]
) -> tuple[dict, dict[str, list[int]]]:
    """A notebook that tries other answers to its exercises, for wrong-answer tests.

    variants maps an exercise's function name to bodies to try in place of its solution. The
    result keeps the notebook's code cells in order up to the last exercise named; right after
    each named exercise's checker cell (the next cell that calls check) it adds, per body, the
    exercise cell with that body and a copy of the checker, then the original exercise cell
    again (so the notebook goes on as before). Returns the notebook and, per function, the
    indices of the checker copies, whose outputs are the verdicts in the order of the bodies.
    """
    import copy

    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    sources = ["".join(c["source"]) for c in code]
    where = {}
    for fn in variants:
        ex = next(
            (i for i, src in enumerate(sources) if f"def {fn}(" in src and BEGIN_SOLUTION in src),
            None,
        )
        if ex is None:
            raise ValueError(f"function {fn!r} is not an exercise in this notebook")
        checker = next((k for k in range(ex + 1, len(code)) if is_checker(sources[k])), None)
        if checker is None:
            raise ValueError(f"no checker cell follows the exercise {fn!r}")
        where[checker] = (fn, ex)
    cells: list[dict] = []
    verdicts: dict[str, list[int]] = {fn: [] for fn in variants}
    for k in range(max(where) + 1):
        cells.append(copy.deepcopy(code[k]))
        if k not in where:
            continue
        fn, ex = where[k]
        lines = sources[ex].splitlines(keepends=True)
        begin, end, indent = _solution_span(lines)
        for body in variants[fn]:
            variant = copy.deepcopy(code[ex])
            new_body = "".join(f"{indent}{ln}\n" for ln in body.strip("\n").splitlines())
            variant["source"] = "".join(lines[:begin]) + new_body + "".join(lines[end + 1 :])
            cells += [variant, copy.deepcopy(code[k])]
            verdicts[fn].append(len(cells) - 1)
        cells.append(copy.deepcopy(code[ex]))  # the reference solution again
    for n, c in enumerate(cells):
        c["outputs"], c["execution_count"], c["id"] = [], None, f"v{n:03d}"
    out = copy.deepcopy(nb)
    out["cells"] = cells
    return out, verdicts


def run_exercises(path: Path, variants: dict[str, list[str]]) -> dict[str, list[str]]:
    """Execute a notebook once, trying each body for each named exercise; the verdicts.

    For wrong-answer tests: `run_exercises(nb_path, {"softmax": [right, wrong1, wrong2]})`
    returns, per function, what the checker printed for each body, in order.
    """
    import nbformat
    from nbclient import NotebookClient

    nb, idx = exercise_variants(json.loads(Path(path).read_text(encoding="utf-8")), variants)
    nb = nbformat.reads(json.dumps(nb), as_version=4)
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(Path(path).parent)}},
    ).execute()
    text = ["".join("".join(o.get("text", "")) for o in c.outputs) for c in nb.cells]
    return {fn: [text[i] for i in ids] for fn, ids in idx.items()}


def run_exercise_variants(path: Path, function: str, bodies: list[str]) -> list[str]:
    """run_exercises for one exercise: the verdicts for each body, in order."""
    return run_exercises(path, {function: bodies})[function]


def student_version(nb: dict, name: str = "notebook") -> dict:
    """A copy of a notebook with its solutions stubbed and all outputs cleared."""
    import copy

    nb = copy.deepcopy(nb)
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        cell["source"] = stub_solutions(src, f"{name}, cell {i}")
        cell["outputs"], cell["execution_count"] = [], None
    return nb


def write_students(paths: list[Path], out: Path) -> list[Path]:
    """Student versions of the notebooks that have exercises, written to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if BEGIN_SOLUTION not in json.dumps(nb):
            continue
        target = out / path.name
        target.write_text(
            json.dumps(student_version(nb, path.name), indent=1, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
        written.append(target)
    return written


def machine_description() -> str:
    import torch

    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def execute_one(path: Path) -> float:
    """Run one notebook top to bottom in a fresh kernel, clean it, write it; seconds taken."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    nb = clean(nb)
    bad = problems(nb, path.name)
    if bad:
        raise SystemExit("refusing to store outputs:\n  " + "\n  ".join(bad))
    nbformat.validate(nb)
    tmp = path.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(path)
    return seconds


def execute(paths: list[Path]) -> int:
    sys.path.insert(0, str(REPO / "tools"))
    import coursemap

    os.environ.update(KERNEL_ENV)
    rel = [str(p.relative_to(REPO)) for p in paths]
    # Format first: a reformatted source line can change an output (a warning echoes it).
    subprocess.run([sys.executable, "-m", "ruff", "check", "--fix", "--quiet", *rel], cwd=REPO)
    subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", *rel], cwd=REPO, check=True)
    cmap = coursemap.load_course_map(coursemap.COURSE_MAP)
    machine = machine_description()
    today = datetime.date.today().isoformat()
    for path in paths:
        print(f"executing {path.name} ...", flush=True)
        seconds = execute_one(path)
        print(f"  {seconds:.1f} s", flush=True)
        coursemap.record_run_time(cmap, path.name, "ci", seconds, machine, today)
        coursemap.write_course_map(cmap)
    coursemap.render_readme(cmap)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["execute"]:
        return execute(notebook_paths(argv[1:]))
    if argv[:1] == ["students"]:
        rest = argv[1:]
        out = REPO / "build" / "students"
        if "--out" in rest:
            i = rest.index("--out")
            out = Path(rest[i + 1]).resolve()
            rest = rest[:i] + rest[i + 2 :]
        for p in write_students(notebook_paths(rest), out):
            print(f"wrote {p}")
        return 0
    if argv[:1] == ["check"]:
        bad = [
            p
            for path in notebook_paths(argv[1:])
            for p in problems(json.loads(path.read_text()), path.name)
        ]
        print("\n".join(bad) or "all notebooks clean")
        return 1 if bad else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
