"""course_lib.check and the student versions: right answers pass, stubs get "not yet", and
plausible wrong answers are rejected with a hint that names the mistake."""

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from exercise_helpers import learner
from nbclient import NotebookClient

import notebooks as nbtools
from course_lib import check as C
from course_lib.exercises import nb00

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- exercise 1: softmax


def softmax_solution(x):
    z = x - x.max(dim=-1, keepdim=True).values
    e = z.exp()
    return e / e.sum(dim=-1, keepdim=True)


def softmax_no_max_shift(x):
    e = x.exp()
    return e / e.sum(dim=-1, keepdim=True)


def softmax_wrong_dim(x):
    z = x - x.max(dim=0, keepdim=True).values
    e = z.exp()
    return e / e.sum(dim=0, keepdim=True)


def softmax_stub(x):
    raise NotImplementedError("Exercise: replace this line with your code")


SOFTMAX = dict(
    reference=lambda x: torch.softmax(x, dim=-1),
    cases=[
        C.case(torch.linspace(-2, 2, 10).reshape(2, 5), label="two rows"),
        C.case(torch.randn(1, 7, generator=torch.Generator().manual_seed(0)), label="batch of one"),
        C.case(torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(1)), label="3-D input"),
        C.case(torch.tensor([[1e4, 0.0, -1e4]]), label="large logits"),
    ],
    mistakes=[
        C.mistake(
            "softmax without subtracting the row max",
            "exp(10000) overflows to inf; subtract each row's max before exp (same result)",
            softmax_no_max_shift,
        ),
        C.mistake(
            "normalising over the wrong dimension",
            "each row (the last dimension) must sum to 1: use dim=-1",
            softmax_wrong_dim,
        ),
    ],
)


def test_softmax_solution_passes(capsys):
    v = C.check(softmax_solution, **SOFTMAX)
    assert v.passed and v.status == "passed"
    assert capsys.readouterr().out == "softmax_solution: all 4 cases pass. Well done!\n"


def test_softmax_stub_is_not_yet():
    v = C.check(softmax_stub, **SOFTMAX, quiet=True)
    assert v.status == "not yet" and "not yet" in v.message and "NotImplementedError" in v.message


def test_softmax_without_max_shift_is_named():
    v = C.check(softmax_no_max_shift, **SOFTMAX, quiet=True)
    assert v.status == "wrong" and v.case == "large logits"
    assert "3 of 4 cases pass" in v.message
    assert "hint: this looks like softmax without subtracting the row max" in v.message
    assert "expected: tensor of shape (1, 3), float32: [1, 0, 0]" in v.message
    assert "got:      tensor of shape (1, 3), float32: [nan, 0, 0]" in v.message


def test_softmax_over_the_wrong_dimension_is_named():
    v = C.check(softmax_wrong_dim, **SOFTMAX, quiet=True)
    assert v.status == "wrong" and v.case == "two rows"
    assert "this looks like normalising over the wrong dimension" in v.message


def test_the_verdict_never_shows_the_solution():
    v = C.check(softmax_no_max_shift, **SOFTMAX, quiet=True)
    for text in ("keepdim", "max(dim", ".exp()", "def "):
        assert text not in v.message


# ------------------------------------------------------------------------ exercise 2: causal mask


def mask_solution(T):
    return torch.tril(torch.ones(T, T, dtype=torch.bool))


def mask_off_by_one(T):
    return torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=-1)


def mask_future(T):
    return torch.triu(torch.ones(T, T, dtype=torch.bool))


MASK = dict(
    reference=mask_solution,
    cases=[C.case(1, label="one token"), C.case(2), C.case(5), C.case(8)],
    mistakes=[
        C.mistake(
            "a causal mask off by one",
            "position t may attend to itself: keep the diagonal (diagonal=0)",
            mask_off_by_one,
        ),
        C.mistake(
            "a mask that lets positions see the future",
            "row t is the query: it may see columns 0..t, the lower triangle",
            mask_future,
        ),
    ],
)


def test_mask_solution_passes():
    assert C.check(mask_solution, **MASK, quiet=True).passed


def test_mask_off_by_one_is_named():
    v = C.check(mask_off_by_one, **MASK, quiet=True)
    assert v.status == "wrong" and v.case == "one token"
    assert "this looks like a causal mask off by one" in v.message
    assert "at index (0, 0) expected True, got False" in v.message


def test_mask_looking_at_the_future_is_named():
    v = C.check(mask_future, **MASK, quiet=True)
    assert (
        v.status == "wrong"
        and "this looks like a mask that lets positions see the future" in v.message
    )


def test_mask_with_the_wrong_dtype_gets_a_generic_hint():
    v = C.check(lambda T: mask_solution(T).float(), **MASK, quiet=True, name="causal_mask")
    assert "expected dtype bool, got float32" in v.message and "wrong dtype" in v.message


# --------------------------------------------------------------------------- other verdicts


def test_an_exception_becomes_a_verdict_quoting_the_learners_line(capsys):
    def bad(x):
        y = x * 2
        return y[10]

    v = C.check(bad, **SOFTMAX)
    out = capsys.readouterr().out
    assert v.status == "wrong" and "bad raised IndexError" in out
    assert "(line 3 of bad: `return y[10]`)" in out
    assert "Traceback" not in out


def test_a_hang_is_a_verdict():
    def hang(x):
        while True:
            pass

    v = C.check(hang, **SOFTMAX, timeout=0.3, quiet=True)
    assert v.status == "timeout" and "did not return within 0.3 s" in v.message


def test_a_hang_is_a_verdict_outside_the_main_thread():
    box = {}

    def hang(x):
        import time

        time.sleep(2)

    def run():
        box["v"] = C.check(hang, **SOFTMAX, timeout=0.2, quiet=True)

    t = threading.Thread(target=run)
    t.start()
    t.join(10)
    assert box["v"].status == "timeout"


def test_a_learner_except_exception_cannot_swallow_the_timeout():
    def stubborn(x):
        while True:
            try:
                while True:
                    pass
            except Exception:
                pass

    assert C.check(stubborn, **SOFTMAX, timeout=0.3, quiet=True).status == "timeout"


def test_changing_the_input_in_place_is_caught():
    def in_place(x):
        x -= x.max(dim=-1, keepdim=True).values
        return torch.softmax(x, dim=-1)

    v = C.check(in_place, **SOFTMAX, quiet=True)
    assert v.status == "wrong" and "changed in place" in v.message


def test_wrong_shape_gets_a_generic_hint():
    v = C.check(lambda x: softmax_solution(x).T, **SOFTMAX, quiet=True, name="softmax")
    assert "expected shape (2, 5), got (5, 2)" in v.message and "wrong shape" in v.message


def test_numbers_and_sequences():
    cases = [C.case(3, 4), C.case(0.1, 0.2)]
    assert C.check(lambda a, b: a + b, lambda a, b: a + b, cases, quiet=True).passed
    v = C.check(lambda a, b: a - b, lambda a, b: a + b, cases, quiet=True, name="add")
    assert "expected 7, got -1" in v.message
    pairs = [C.case(torch.arange(4))]
    ref = lambda t: (t.sum(), t.max())  # noqa: E731
    assert C.check(lambda t: (t.sum(), t.max()), ref, pairs, quiet=True).passed
    v = C.check(lambda t: (t.sum(), t.min()), ref, pairs, quiet=True, name="stats")
    assert "item 1: expected 3, got 0" in v.message


def test_verdict_displays_once_in_a_notebook():
    v = C.Verdict("passed", "x: all 1 cases pass. Well done!")
    assert v._ipython_display_() is None and str(v) == v.message


@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        (dict(fn=5), TypeError, "fn must be the function to check, got int"),
        (dict(reference="softmax"), TypeError, "reference must be callable"),
        (dict(cases=[]), ValueError, "cases must be a non-empty list"),
        (dict(cases=[(1,)]), ValueError, "cases must be a non-empty list of check.case"),
        (dict(mistakes=["oops"]), TypeError, "mistakes must be check.mistake"),
        (dict(timeout=0), ValueError, "timeout must be a positive number of seconds, got 0"),
    ],
)
def test_bad_input_to_check(kwargs, exc, message):
    args = dict(fn=softmax_solution, **SOFTMAX)
    args.update(kwargs)
    with pytest.raises(exc, match=message):
        C.check(quiet=True, **args)


def test_mistake_needs_a_function():
    with pytest.raises(TypeError, match="fn must be callable"):
        C.mistake("x", "y", "not a function")


def test_changing_a_keyword_argument_in_place_is_caught():
    def scale_into(x, *, out):
        out.mul_(0.0).add_(x * 2)  # writes into the learner's copy of `out`
        return x * 2

    cases = [C.case(torch.ones(3), out=torch.zeros(3), label="out given")]
    v = C.check(scale_into, lambda x, *, out: x * 2, cases, quiet=True)
    assert v.status == "wrong" and "changed in place" in v.message
    assert "keyword argument 'out'" in v.message
    v = C.check(lambda x, *, out: x * 2, lambda x, *, out: x * 2, cases, quiet=True)
    assert v.passed


def test_numpy_results_get_a_verdict_not_a_traceback():
    cases = [C.case(np.arange(4.0), label="floats"), C.case(np.arange(3), label="ints")]
    double = lambda a: a * 2  # noqa: E731
    assert C.check(double, double, cases, quiet=True).passed
    assert C.check(lambda a: a * 2 + 1e-9, double, cases[:1], quiet=True).passed  # tolerance
    v = C.check(lambda a: a * 3, double, cases, quiet=True, name="double")
    assert v.status == "wrong" and "at index (1,) expected 2, got 3" in v.message
    v = C.check(lambda a: (a * 2).astype(np.float32), double, cases, quiet=True)
    assert "expected dtype float64, got float32" in v.message
    v = C.check(lambda a: list(a * 2), double, cases, quiet=True)
    assert "expected a NumPy array, got" in v.message
    v = C.check(lambda a: (a * 2)[:-1], double, cases, quiet=True)
    assert "expected shape (4,), got (3,)" in v.message
    # NumPy scalars compare like numbers, both ways round
    total = lambda a: a.sum()  # noqa: E731  (an np.float64 / np.int64)
    assert C.check(lambda a: float(a.sum()), total, cases, quiet=True).passed
    assert C.check(
        lambda a: np.float32(a.sum()), lambda a: float(a.sum()), cases, quiet=True
    ).passed
    v = C.check(lambda a: a.sum() + 1, total, cases, quiet=True)
    assert v.status == "wrong" and "expected 6, got 7" in v.message
    # an array where a number is expected (and the reverse) is a verdict too
    v = C.check(double, lambda a: float(a.sum()), cases, quiet=True)
    assert v.status == "wrong" and "expected a number, got" in v.message
    v = C.check(lambda a: 3, double, cases, quiet=True)
    assert v.status == "wrong" and "expected a NumPy array, got 3" in v.message


def _slow_double(x):
    time.sleep(0.3)
    return x * 2


def test_an_outer_alarm_timer_is_restored_with_the_time_left():
    if not hasattr(signal, "setitimer"):
        pytest.skip("no interval timers on this platform")
    fired = []

    def outer(signum, frame):
        fired.append(signum)

    previous = signal.signal(signal.SIGALRM, outer)
    try:
        signal.setitimer(signal.ITIMER_REAL, 30.0, 7.0)
        v = C.check(_slow_double, lambda x: x * 2, [C.case(torch.ones(2))], quiet=True)
        left, interval = signal.getitimer(signal.ITIMER_REAL)
        assert v.passed
        assert 28.0 < left < 29.8, left  # still running: 30 s less the time check took
        assert interval == pytest.approx(7.0)  # and still repeating every 7 s
        assert signal.getsignal(signal.SIGALRM) is outer
        assert fired == []
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_an_outer_alarm_due_during_the_check_reaches_its_own_handler():
    if not hasattr(signal, "setitimer"):
        pytest.skip("no interval timers on this platform")
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)  # due before the learner's function returns
        v = C.check(_slow_double, lambda x: x * 2, [C.case(torch.ones(2))], quiet=True, timeout=5)
        assert v.passed, v.message  # the outer alarm is not mistaken for check's time-out
        assert fired == [signal.SIGALRM]
        assert signal.getitimer(signal.ITIMER_REAL)[0] == 0.0  # delivered once, not re-armed
        # ... and check's own time-out still works after an outer alarm went off
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        v = C.check(lambda x: time.sleep(3), lambda x: x, [C.case(1)], quiet=True, timeout=0.3)
        assert v.status == "timeout" and len(fired) == 2
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_timeout_of_a_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="timeout must be a positive number of seconds, got str"):
        C.check(softmax_solution, **SOFTMAX, timeout="5", quiet=True)


# --------------------------------------------------------------------------- student versions

EXERCISE_CELL = '''def softmax(x):
    """Row-wise softmax of x: (..., n) -> (..., n)."""
    ### BEGIN SOLUTION
    z = x - x.max(dim=-1, keepdim=True).values
    return z.exp() / z.exp().sum(dim=-1, keepdim=True)
    ### END SOLUTION'''


def fixture_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Exercise fixture"),
        nbformat.v4.new_code_cell("import torch\n\nfrom course_lib.check import case, check"),
        nbformat.v4.new_code_cell(EXERCISE_CELL),
        nbformat.v4.new_code_cell(
            "check(softmax, lambda x: torch.softmax(x, dim=-1), [case(torch.randn(2, 3))])"
        ),
        # cells after an exercise use the library, never the learner's function
        nbformat.v4.new_code_cell("print(torch.softmax(torch.zeros(1, 4), dim=-1).tolist())"),
        # a hang inside a real kernel is interrupted and reported
        nbformat.v4.new_code_cell(
            "def hang(x):\n    while True:\n        pass\n\n\n"
            "check(hang, lambda x: x, [case(1)], timeout=0.5)"
        ),
    ]
    nb.metadata["kernelspec"] = dict(nbtools.KERNELSPEC)
    return nb


def test_stub_replaces_the_solution_block():
    stubbed = nbtools.stub_solutions(EXERCISE_CELL)
    assert stubbed.splitlines() == [
        "def softmax(x):",
        '    """Row-wise softmax of x: (..., n) -> (..., n)."""',
        '    raise NotImplementedError("Exercise: replace this line with your code")',
    ]
    assert nbtools.stub_solutions("x = 1\n") == "x = 1\n"


@pytest.mark.parametrize(
    "source, message",
    [
        ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", "must sit inside a function body"),
        ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "never closed"),
        ("def f():\n    return 1\n    ### END SOLUTION\n", "without ### BEGIN SOLUTION"),
        ("def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n", "opens inside another"),
    ],
)
def test_malformed_solution_blocks_are_named(source, message):
    with pytest.raises(ValueError, match=message):
        nbtools.stub_solutions(source, "fixture.ipynb, cell 2")


def run_notebook(nb):
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    )
    client.execute()
    return [
        "".join(o.get("text", "")) for c in nb.cells if c.cell_type == "code" for o in c.outputs
    ]


def test_solution_and_student_versions_both_run(tmp_path):
    nb = fixture_notebook()
    solved = run_notebook(nbformat.from_dict(json.loads(json.dumps(nb))))
    assert "softmax: all 1 cases pass. Well done!\n" in solved
    assert any("hang did not return within 0.5 s" in p for p in solved)
    student = nbformat.from_dict(nbtools.student_version(json.loads(json.dumps(nb)), "fixture"))
    assert "BEGIN SOLUTION" not in json.dumps(student) and "z.exp()" not in json.dumps(student)
    assert all(c.get("outputs", []) == [] for c in student.cells if c.cell_type == "code")
    printed = run_notebook(student)  # top to bottom without an error
    assert any(p.startswith("softmax: not yet.") for p in printed)
    assert "[[0.25, 0.25, 0.25, 0.25]]\n" in printed


def test_students_command_writes_only_notebooks_with_exercises(tmp_path):
    with_ex = tmp_path / "01_with.ipynb"
    nbformat.write(fixture_notebook(), with_ex)
    without = tmp_path / "02_without.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), without)
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "notebooks.py"),
            "students",
            str(with_ex),
            str(without),
            "--out",
            str(tmp_path / "students"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "students").iterdir()) == ["01_with.ipynb"]
    nbformat.validate(nbformat.read(tmp_path / "students" / "01_with.ipynb", as_version=4))


STORED = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WITH_EXERCISES = [p for p in STORED if nbtools.BEGIN_SOLUTION in p.read_text(encoding="utf-8")]


def test_some_notebook_has_exercises():
    assert WITH_EXERCISES, "no notebook has an exercise"


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.name)
def test_student_versions_of_the_course_work(path):
    # Strict nbval runs the notebook once. The student version differs only in its stubbed
    # solutions, so it runs top to bottom exactly when (1) no cell but an exercise's checker reads
    # the learner's function, checked statically here, and (2) each stub and its checker run and
    # say "not yet", run here with only the cells they read from.
    nb = json.loads(path.read_text())
    assert nbtools.learner_function_uses(nb, path.name) == []
    student = nbformat.reads(json.dumps(nbtools.student_exercises(nb, path.name)), as_version=4)
    assert "BEGIN SOLUTION" not in json.dumps(student)
    client = NotebookClient(
        student,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError on the first cell that fails
    verdicts = [  # one verdict per checker cell (a print may arrive in several stream parts)
        "".join(o.get("text", "") for o in c.outputs)
        for c in student.cells
        if c.cell_type == "code" and nbtools.is_checker(c.source)
    ]
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(verdicts) == len(nbtools.exercises(code)) > 0
    assert all(": not yet." in v for v in verdicts), verdicts


REFERENCE_CODE = ("mistake(", "reference=", "lambda", "case(", "def ", "class ", "check(")


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.name)
def test_student_check_cells_give_nothing_away(path):
    # a check cell is a call into the answer key (course_lib.exercises.nbNN): at most 5 lines,
    # with no reference, case or named mistake for a learner to read in the student version
    nb = json.loads(path.read_text())
    solved = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    student = nbtools.student_version(nb, path.name)
    code = ["".join(c["source"]) for c in student["cells"] if c["cell_type"] == "code"]
    for fn, (_, checker) in nbtools.exercises(solved).items():
        lines = [ln for ln in code[checker].splitlines() if ln.strip()]
        assert len(lines) <= 5, f"{path.name}: the check cell of {fn} has {len(lines)} lines"
        shown = [w for w in REFERENCE_CODE if w in code[checker]]
        assert not shown, f"{path.name}: the check cell of {fn} shows {shown}"
        assert f"nb{path.name[:2]}." in code[checker], (
            f"{path.name}: {fn} is not checked by its key"
        )


def test_needed_cells_follow_the_names_read():
    sources = [
        "import math\nimport torch",  # 0
        "big = train_for_an_hour()",  # 1: nothing below reads it
        "%matplotlib inline\nscale = 2.0",  # 2: read by the function in 4 (magics are fine)
        "x = torch.ones(3)",  # 3
        "def f(v):\n    y = v * scale\n    return math.fsum(y.tolist())",  # 4
        "check(f, ref, [x])",  # 5: check and ref are not defined in a cell: ignored
        "x = big",  # 6: after the targets
    ]
    assert nbtools.needed_cells(sources, [4, 5]) == [0, 2, 3, 4, 5]
    assert nbtools.needed_cells(sources, [6]) == [1, 6]
    assert nbtools.needed_cells(sources, [4], {4: ["def f(v):\n    return big"]}) == [0, 1, 2, 4]
    defined, read = nbtools.cell_names("for i in range(3):\n    total = i + offset\nprint(total)")
    assert defined == {"i", "total"} and read == {"offset"}


def test_a_later_use_of_the_learners_function_is_found():
    nb = fixture_notebook()
    assert nbtools.learner_function_uses(nb, "fixture") == []
    nb["cells"].append(nbformat.v4.new_code_cell("probs = softmax(torch.zeros(2))"))
    found = nbtools.learner_function_uses(nb, "fixture")
    assert len(found) == 1 and "uses softmax, the learner's function" in found[0]
    nb["cells"].insert(-1, nbformat.v4.new_code_cell("from torch import softmax"))
    assert nbtools.learner_function_uses(nb, "fixture") == []  # redefined before the use


def test_notebook_00_exercise_wrong_answers_are_named():
    sig = "def relative_error(got, reference):"
    right, absolute, by_result, tensor = (
        nb00.relative_error(learner(sig, body), quiet=True).message
        for body in [
            "return ((got - reference).norm() / reference.norm()).item()",
            "return (got - reference).norm().item()",
            "return ((got - reference).norm() / got.norm()).item()",
            "return (got - reference).norm() / reference.norm()",
        ]
    )
    assert right == "relative_error: all 4 cases pass. Well done!"
    assert "hint: this looks like the absolute error" in absolute
    assert "hint: this looks like dividing by the norm of the result" in by_result
    assert "expected a number, got tensor of shape ()" in tensor and ".item()" in tensor


def test_notebook_00_pairwise_distances_wrong_answers_are_named():
    # the PyTorch primer's broadcasting exercise: both loop-free forms pass; each slip is named
    sig = "def pairwise_sq_distances(x, y):"
    norms = "xx = (x * x).sum(dim=1, keepdim=True)\nyy = (y * y).sum(dim=1)\n"
    right, direct, no_keepdim, no_two, root, swapped, stub = (
        nb00.pairwise_sq_distances(learner(sig, body), quiet=True).message
        for body in [
            norms + "return (xx - 2 * x @ y.T + yy).clamp(min=0)",
            "return ((x[:, None, :] - y[None, :, :]) ** 2).sum(dim=-1)",
            "xx = (x * x).sum(dim=1)\nyy = (y * y).sum(dim=1)\nreturn xx - 2 * x @ y.T + yy",
            norms + "return xx - x @ y.T + yy",
            "return (x[:, None, :] - y[None, :, :]).norm(dim=-1)",
            "return ((x[None, :, :] - y[:, None, :]) ** 2).sum(dim=-1)",
            "raise NotImplementedError",
        ]
    )
    assert right == "pairwise_sq_distances: all 5 cases pass. Well done!"
    assert direct == right
    assert "hint: this looks like the squared norms of x without keepdim" in no_keepdim
    assert "hint: this looks like the factor 2 left out" in no_two
    assert "hint: this looks like the distance, not its square" in root
    assert "hint: this looks like rows and columns swapped" in swapped
    assert "not yet" in stub


FIT_LINE = """w = torch.zeros((), requires_grad=True)
b = torch.zeros((), requires_grad=True)
for _ in range(steps):
    loss = ((w * x + b - y) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        w -= lr * w.grad
        b -= lr * b.grad
    w.grad = None
    b.grad = None
return w.item(), b.item()"""


def test_notebook_00_fit_line_wrong_answers_are_named():
    # the primer's gradient-descent exercise, against nn.Linear + F.mse_loss + torch.optim.SGD
    sig = "def fit_line(x, y, lr, steps):"
    reset = "    w.grad = None\n    b.grad = None\n"
    update = "        w -= lr * w.grad\n        b -= lr * b.grad\n"
    assert reset in FIT_LINE and update in FIT_LINE and ".mean()" in FIT_LINE
    right, zeroed, never_reset, summed, uphill, outside = (
        nb00.fit_line(learner(sig, body), quiet=True).message
        for body in [
            FIT_LINE,
            FIT_LINE.replace(reset, "    w.grad.zero_()\n    b.grad.zero_()\n"),
            FIT_LINE.replace(reset, ""),
            FIT_LINE.replace(".mean()", ".sum()"),
            FIT_LINE.replace(update, update.replace("-=", "+=")),
            FIT_LINE.replace(
                "    with torch.no_grad():\n" + update, update.replace("        ", "    ")
            ),
        ]
    )
    assert right == "fit_line: all 4 cases pass. Well done!"
    assert zeroed == right  # zeroing the gradients in place is as good as setting them to None
    assert "case 'one step' does not" not in never_reset  # one step cannot show it
    assert "hint: this looks like gradients never reset" in never_reset
    assert "hint: this looks like the sum of squared errors instead of the mean" in summed
    assert "hint: this looks like a step up the gradient" in uphill
    assert "raised RuntimeError" in outside and "in-place operation" in outside


def test_is_checker():
    assert nbtools.is_checker("check(f, ref, cases)") and nbtools.is_checker("v = check(\n f)")
    assert not nbtools.is_checker("torch.autograd.gradcheck(f, x)")
    assert not nbtools.is_checker("C.check(f)") and not nbtools.is_checker("precheck(x)")


def test_exercise_variants_bad_names():
    nb = json.loads(json.dumps(fixture_notebook()))
    with pytest.raises(ValueError, match="'nope' is not an exercise"):
        nbtools.exercise_variants(nb, {"nope": ["return 1"]})


def test_exercise_variants_keep_the_notebook_going():
    nb = json.loads(json.dumps(fixture_notebook()))
    out, idx = nbtools.exercise_variants(nb, {"softmax": ["return x", "return -x"]})
    sources = ["".join(c["source"]) for c in out["cells"]]
    # prefix (import, exercise, checker), 2 x (variant, checker), the exercise restored
    assert len(sources) == 3 + 4 + 1 and idx == {"softmax": [4, 6]}
    assert "    return x\n" in sources[3] and "BEGIN SOLUTION" in sources[-1]


def test_a_class_can_be_an_exercise():
    # module-sized exercises are classes: each method's solution block becomes a stub, and the
    # class counts as the exercise its checker checks
    sources = [
        "import torch",
        "class Scale(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        ### BEGIN SOLUTION\n"
        "        self.w = torch.nn.Parameter(torch.ones(()))\n"
        "        ### END SOLUTION\n\n"
        "    def forward(self, x):\n"
        "        ### BEGIN SOLUTION\n"
        "        return self.w * x\n"
        "        ### END SOLUTION",
        "nb99.scale(Scale)",
    ]
    assert nbtools.exercises(sources) == {"Scale": (1, 2)}
    stubbed = nbtools.stub_solutions(sources[1])
    assert stubbed.count("raise NotImplementedError") == 2 and "self.w * x" not in stubbed


def test_a_tensor_inside_a_tuple_gets_the_item_hint():
    # the learner returns (w, b) as 0-d tensors where the reference returns two floats
    verdict = C.check(
        lambda x: (torch.tensor(x), torch.tensor(2 * x)),
        reference=lambda x: (float(x), 2.0 * x),
        cases=[C.case(1.5)],
        quiet=True,
    )
    assert "item 0: expected a number, got tensor" in verdict.message
    assert ".item() turns a one-element tensor into one" in verdict.message
