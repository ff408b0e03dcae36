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

# The kernel environment for stored outputs and for nbval alike (conftest.py applies it with
# pin_kernel_env): everything a stored output depends on is set here, whatever the caller's shell
# exports, so that `execute` and the tests see the same kernel on every machine.
KERNEL_ENV = {
    "COURSE_PROFILE": "ci",  # smallest sizes, one torch thread
    "COURSE_DEVICE": "cpu",  # stored outputs come from the CPU, whatever the machine has
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",  # figures as stored PNGs, also
    # where a server exports MPLBACKEND=Agg (which would store no image at all)
    "TQDM_DISABLE": "1",  # progress bars are for people; their timings would break nbval
    "PYTHONHASHSEED": "0",  # stable set and dict-of-str ordering
    "IPYKERNEL_CELL_NAME": "<IPY-INPUT>",  # stable file name in warnings and tracebacks
    "OMP_NUM_THREADS": "1",  # one thread everywhere: the reduction order of a sum, and so its
    "MKL_NUM_THREADS": "1",  # last bits, depends on the thread count
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",  # no fork warnings from Hugging Face tokenizers
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # silences the debugger's frozen-modules note
    "JUPYTER_PLATFORM_DIRS": "1",  # silences jupyter_core's path deprecation warning
}
# Removed from a kernel's environment: the course's own switches other than KERNEL_ENV's (a data
# or cache directory, offline mode, a MiniLM copy: all change what a cell prints), PyTorch's
# logging and compiler switches, and Python's warning filters and start-up hooks.
KERNEL_ENV_DROP_PREFIXES = ("COURSE_", "TORCH_", "TORCHINDUCTOR_", "TORCHDYNAMO_")
KERNEL_ENV_DROP = {"PYTHONWARNINGS", "PYTHONSTARTUP", "PYTHONDEVMODE", "PYTHONOPTIMIZE"}
# Read by tests (never by a notebook): kept so that CI can still steer them.
TEST_SWITCHES = {"COURSE_REQUIRE_SEED", "COURSE_REQUIRE_BROWSER", "COURSE_CHROMIUM"}


def pin_kernel_env(environ=None) -> dict[str, str]:
    """Make `environ` (default os.environ) the kernel environment: drop what a stored output
    must not depend on, then set KERNEL_ENV. Returns the variables that were dropped."""
    environ = os.environ if environ is None else environ
    dropped = {}
    for key in list(environ):
        if key in TEST_SWITCHES or key in KERNEL_ENV:
            continue
        if key.startswith(KERNEL_ENV_DROP_PREFIXES) or key in KERNEL_ENV_DROP:
            dropped[key] = environ.pop(key)
    environ.update(KERNEL_ENV)
    return dropped


MAX_OUTPUT_BYTES = 300_000  # one output (a figure is 20-80 kB)
MAX_NOTEBOOK_OUTPUT_BYTES = 1_500_000  # all outputs of one notebook
ALLOWED_NB_METADATA = {"kernelspec", "language_info"}
ALLOWED_CELL_METADATA = {"tags", "course"}  # course: {"minutes": N} on a section heading
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
}
# A compared output (nbval checks it digit for digit) must not print digits that the code does not
# guarantee: a rounding error such as "spread 2.5e-15" differs between CPUs. Numbers in scientific
# notation below TINY fail the hygiene check unless they are a bound or a constant ("below 1e-12",
# "< 1e-5", "eps=1e-12") or a real quantity listed here, by notebook and a pattern of their line,
# with the reason they are stable.
TINY = 1e-9
SCI_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?[eE][-+]?\d+(?![\w.])")
BOUND_BEFORE = re.compile(r"(below|under|within|<|<=|≤|eps|tol|atol|rtol)\s*[=:]?\s*$")
ALLOWED_TINY = [
    (
        "06_backpropagation.ipynb",
        r"sigmoid, gain 1 \(vanishing\)|layer 1 \|dL/dW\||layer 1 / layer",
        "vanishing gradients of a 20-layer float64 network: real magnitudes (about 1e-13) "
        "printed to 3 significant digits, far above float64's relative rounding (1e-16)",
    ),
]
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
    """Canonical metadata, cell metadata cut to tags and the course's own keys (a section's
    minutes), and stable cell ids (outputs untouched)."""
    nb["metadata"] = {"kernelspec": dict(KERNELSPEC), "language_info": dict(LANGUAGE_INFO)}
    nb["nbformat"], nb["nbformat_minor"] = 4, 5
    for i, cell in enumerate(nb["cells"]):
        meta = cell.get("metadata", {})
        cell["metadata"] = {k: meta[k] for k in sorted(ALLOWED_CELL_METADATA) if meta.get(k)}
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


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
LOADING_WEIGHTS = "Loading weights"  # Hugging Face's progress bar while a model loads


def _widget_or_loading_bar(out: dict) -> bool:
    """A stored ipywidgets view (a tqdm.notebook bar: tqdm.notebook ignores TQDM_DISABLE) or the
    text of Hugging Face's "Loading weights" bar. Both record how far a bar had got on one run,
    and a widget's model id changes on every run: neither belongs in a reference output."""
    data = out.get("data", {})
    text = "".join(out.get("text", "")) + "".join(data.get("text/plain", ""))
    return WIDGET_MIME in data or LOADING_WEIGHTS in text


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
            if _widget_or_loading_bar(out):
                found.append(
                    f"{name}: code cell {i + 1} stores a widget or a 'Loading weights' progress "
                    "bar: switch the bar off in the code (for Hugging Face: "
                    "transformers.utils.logging.disable_progress_bar()) and execute again"
                )
            if out.get("output_type") == "error" and "raises-exception" not in tags:
                found.append(
                    f"{name}: code cell {i + 1} stores an error but has no raises-exception tag"
                )
    found += tiny_numbers(nb, name)
    if total > MAX_NOTEBOOK_OUTPUT_BYTES:
        found.append(f"{name}: outputs total {total // 1000} kB")
    return found


def compared_text(cell: dict) -> str:
    """The text of a code cell's outputs that strict nbval compares ('' for ignored cells)."""
    tags = cell.get("metadata", {}).get("tags", [])
    if "nbval-ignore-output" in tags or "nbval-skip" in tags:
        return ""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append("".join(out.get("text", "")))
        elif "data" in out:
            parts.append("".join(out["data"].get("text/plain", "")))
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    return "".join(parts)


def tiny_numbers(nb: dict, name: str = "notebook") -> list[str]:
    """Compared outputs that print a number in scientific notation below TINY (see ALLOWED_TINY)."""
    allowed = [re.compile(pat) for nb_name, pat, _ in ALLOWED_TINY if nb_name == name]
    found = []
    code = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    for i, cell in enumerate(code):
        for line in compared_text(cell).splitlines():
            for m in SCI_NUMBER.finditer(line):
                value = float(m.group(0))
                if value == 0 or abs(value) >= TINY or any(a.search(line) for a in allowed):
                    continue
                if BOUND_BEFORE.search(line[: m.start()]):
                    continue  # a bound or a constant, not a measured rounding error
                found.append(
                    f"{name}: code cell {i + 1} prints {m.group(0)} ({line.strip()[:80]!r}): a "
                    f"number below {TINY:g} is usually rounding error that differs between CPUs; "
                    "print a bound instead (e.g. 'below 1e-12') and assert it, or tag the cell "
                    "nbval-ignore-output and assert with a tolerance"
                )
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


# check(...) (not gradcheck( or x.check(), or an answer-key call such as nb05.ce_grad(...)
CHECK_CALL = re.compile(r"(?<![\w.])(check|nb\d\d\.\w+)\(")


def is_checker(source: str) -> bool:
    """Whether a cell checks an exercise: check(...) or an answer-key call nbNN.name(...)."""
    return bool(CHECK_CALL.search(source))


# ------------------------------------------------------------------ sections and teaching time

SUMMARY_HEADINGS = ("## Summary",)


def sections(nb: dict) -> list[dict]:
    """The notebook's `## ` sections: [{"title", "minutes", "optional"}, ...], in order.

    A section's teaching time is the `minutes` in its heading cell's metadata
    (`{"course": {"minutes": 15}}`, None when missing); a section a lecturer may skip carries the
    tag `optional` and says "(optional)" in its heading. The summary is not a section.
    """
    found = []
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] != "markdown" or not source.startswith("## "):
            continue
        title = source.splitlines()[0]
        if title.startswith(SUMMARY_HEADINGS):
            continue
        meta = cell.get("metadata", {})
        found.append(
            {
                "title": title,
                "minutes": meta.get("course", {}).get("minutes"),
                "optional": "optional" in meta.get("tags", []),
            }
        )
    return found


# ------------------------------------------------------------------ which cells an exercise needs


def _python(source: str) -> str:
    """A cell's source as plain Python (IPython magics and shell escapes translated)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def cell_names(source: str) -> tuple[set[str], set[str]]:
    """(names a cell defines at top level, global names it reads), from Python's own symbol
    tables. A name the cell both assigns and reads at top level counts as its own, not read
    from earlier cells; names that functions in the cell read from the globals count as read
    (the function may be called later, by the checker)."""
    import builtins
    import symtable

    top = symtable.symtable(_python(source), "<cell>", "exec")
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    read = {s.get_name() for s in top.get_symbols() if s.is_referenced()} - defined
    stack = list(top.get_children())
    while stack:
        table = stack.pop()
        for sym in table.get_symbols():
            if sym.is_global() and sym.is_referenced():
                read.add(sym.get_name())
            if sym.is_declared_global() and sym.is_assigned():
                defined.add(sym.get_name())
        stack.extend(table.get_children())
    return defined, read - set(dir(builtins)) - defined


def needed_cells(
    sources: list[str], targets: list[int], extra: dict[int, list[str]] | None = None
) -> list[int]:
    """The code cells (indices into `sources`) that the `targets` need, in order: each target,
    and for every global name a needed cell reads, the last earlier cell that defines it
    (transitively). `extra[i]` lists more sources whose reads count as cell i's (the bodies a
    wrong-answer test puts into an exercise)."""
    names = [cell_names(src) for src in sources]
    needed, todo = set(), list(targets)
    while todo:
        i = todo.pop()
        if i in needed:
            continue
        needed.add(i)
        reads = set(names[i][1])
        for more in (extra or {}).get(i, []):
            reads |= cell_names(more)[1]
        for name in reads:
            j = next((j for j in range(i - 1, -1, -1) if name in names[j][0]), None)
            if j is not None and j not in needed:
                todo.append(j)
    return sorted(needed)


def _defined_functions(source: str) -> list[str]:
    import ast

    tree = ast.parse(_python(source))
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]


def exercises(sources: list[str]) -> dict[str, tuple[int, int]]:
    """Each exercise's function (or class) name -> (its code cell, the checker cell after it)."""
    found = {}
    for i, src in enumerate(sources):
        if BEGIN_SOLUTION not in src:
            continue
        fns = _defined_functions(src)
        checker = next((k for k in range(i + 1, len(sources)) if is_checker(sources[k])), None)
        if not fns or checker is None:
            raise ValueError(
                f"code cell {i + 1}: an exercise defines a function and a checker cell follows it"
            )
        found[fns[0]] = (i, checker)
    return found


def learner_function_uses(nb: dict, name: str = "notebook") -> list[str]:
    """Cells that would fail in the student version: a cell other than an exercise's checker
    that reads the exercise's function (a stub there, which raises NotImplementedError)."""
    sources = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    found = []
    for fn, (ex, checker) in exercises(sources).items():
        for k in range(ex + 1, len(sources)):
            if k == checker:
                continue
            defined, read = cell_names(sources[k])
            if fn in read:
                found.append(
                    f"{name}: code cell {k + 1} uses {fn}, the learner's function from the "
                    f"exercise in code cell {ex + 1}; in the student version it raises "
                    "NotImplementedError: use the library's version there"
                )
            if fn in defined:
                break  # redefined: later cells use the new definition
    return found


def student_exercises(nb: dict, name: str = "notebook") -> dict:
    """The student version cut to what its exercises need: the cells their stubs and checkers
    read from (`needed_cells`), each exercise stubbed, each checker. Running it shows what a
    learner sees before writing anything, without running the rest of the notebook again."""
    import copy

    student = student_version(nb, name)
    code = [c for c in student["cells"] if c["cell_type"] == "code"]
    sources = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    targets = [i for pair in exercises(sources).values() for i in pair]
    out = copy.deepcopy(student)
    out["cells"] = [copy.deepcopy(code[k]) for k in needed_cells(sources, targets)]
    return out


def _solution_span(lines: list[str]) -> tuple[int, int, str]:
    begin = next(i for i, ln in enumerate(lines) if ln.strip() == BEGIN_SOLUTION)
    end = next(i for i, ln in enumerate(lines) if ln.strip() == END_SOLUTION)
    return begin, end, lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]


def exercise_variants(
    nb: dict, variants: dict[str, list[str]]
) -> tuple[dict, dict[str, list[int]]]:
    """A notebook that tries other answers to its exercises, for wrong-answer tests.

    variants maps an exercise's function name to bodies to try in place of its solution. The
    result keeps, in order, only the code cells that the named exercises, their checkers and the
    bodies need (`needed_cells`), so no other cell runs again. Right after each named exercise's
    checker cell (the next cell that calls check) it adds, per body, the exercise cell with that
    body and a copy of the checker, then the original exercise cell again (so the notebook goes
    on as before). Returns the notebook and, per function, the indices of the checker copies,
    whose outputs are the verdicts in the order of the bodies.
    """
    import copy

    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    sources = ["".join(c["source"]) for c in code]
    where = {}
    for fn in variants:
        ex = next(
            (
                i
                for i, src in enumerate(sources)
                if BEGIN_SOLUTION in src and fn in _defined_functions(src)
            ),
            None,
        )
        if ex is None:
            raise ValueError(f"function {fn!r} is not an exercise in this notebook")
        checker = next((k for k in range(ex + 1, len(code)) if is_checker(sources[k])), None)
        if checker is None:
            raise ValueError(f"no checker cell follows the exercise {fn!r}")
        where[checker] = (fn, ex)
    tried: dict[int, list[str]] = {}  # exercise cell -> its source with each body
    for fn, ex in where.values():
        lines = sources[ex].splitlines(keepends=True)
        begin, end, indent = _solution_span(lines)
        tried[ex] = [
            "".join(lines[:begin])
            + "".join(f"{indent}{ln}\n" for ln in body.strip("\n").splitlines())
            + "".join(lines[end + 1 :])
            for body in variants[fn]
        ]
    keep = needed_cells(sources, list(where) + list(tried), tried)
    cells: list[dict] = []
    verdicts: dict[str, list[int]] = {fn: [] for fn in variants}
    for k in keep:
        cells.append(copy.deepcopy(code[k]))
        if k not in where:
            continue
        fn, ex = where[k]
        for source in tried[ex]:
            variant = copy.deepcopy(code[ex])
            variant["source"] = source
            cells += [variant, copy.deepcopy(code[k])]
            verdicts[fn].append(len(cells) - 1)
        cells.append(copy.deepcopy(code[ex]))  # the reference solution again
    for n, c in enumerate(cells):
        c["outputs"], c["execution_count"], c["id"] = [], None, f"v{n:03d}"
    out = copy.deepcopy(nb)
    out["cells"] = cells
    return out, verdicts


def run_exercises(path: Path, variants: dict[str, list[str]]) -> dict[str, list[str]]:
    """Run the cells of a notebook that the named exercises need, trying each body for each;
    the verdicts.

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

    pin_kernel_env()
    rel = [str(p.relative_to(REPO)) for p in paths]
    # Format first: a reformatted source line can change an output (a warning echoes it).
    subprocess.run([sys.executable, "-m", "ruff", "check", "--fix", "--quiet", *rel], cwd=REPO)
    subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", *rel], cwd=REPO, check=True)
    machine = machine_description()
    today = datetime.date.today().isoformat()
    for path in paths:
        print(f"executing {path.name} ...", flush=True)
        seconds = execute_one(path)
        print(f"  {seconds:.1f} s", flush=True)
        # Read the map just before writing: an edit made while the notebook ran is kept.
        cmap = coursemap.load_course_map(coursemap.COURSE_MAP)
        coursemap.record_run_time(cmap, path.name, "ci", seconds, machine, today)
        coursemap.write_course_map(cmap)
    coursemap.render_readme(coursemap.load_course_map(coursemap.COURSE_MAP))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["execute"]:
        return execute(notebook_paths(argv[1:]))
    if argv[:1] == ["students"]:
        rest = argv[1:]
        out = REPO / "build" / "students"
        if "--out" in rest:
            i = rest.index("--out")
            if i + 1 == len(rest) or rest[i + 1].startswith("-") or not rest[i + 1]:
                print(
                    "usage: notebooks.py students [NOTEBOOK ...] [--out DIR]\n"
                    "--out needs a directory, e.g. --out build/students",
                    file=sys.stderr,
                )
                return 2
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
