"""course_lib stays readable in one sitting: no function longer than 80 lines, no module longer
than 600 (an exception needs its reason below; there are none: split a long module by concept).
Counted from the `def` line to the last line of the body, docstring included, by Python's own
parser."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULES = sorted((REPO / "course_lib").glob("*.py"))
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 600
# (module, qualified name) -> why it may be longer. Data tables only, never logic.
LONG_FUNCTIONS: dict[tuple[str, str], str] = {}
LONG_MODULES: dict[str, str] = {}


def functions(source: str):
    """(qualified name, number of lines) of every function and method, nested ones included."""

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    yield name, child.end_lineno - child.lineno + 1
                yield from walk(child, name + ".")
            else:
                yield from walk(child, prefix)

    yield from walk(ast.parse(source), "")


def test_the_counter_sees_methods_and_nested_functions():
    source = "class A:\n    def f(self):\n        def g():\n            pass\n        return g\n"
    assert dict(functions(source)) == {"A.f": 4, "A.f.g": 2}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_no_function_is_longer_than_80_lines(path):
    long = {
        name: n
        for name, n in functions(path.read_text(encoding="utf-8"))
        if n > MAX_FUNCTION_LINES and (path.stem, name) not in LONG_FUNCTIONS
    }
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {long}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_no_module_is_longer_than_600_lines(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    if path.stem in LONG_MODULES:
        return
    assert n <= MAX_MODULE_LINES, f"{path.name} has {n} lines; split it by concept"


def test_the_exceptions_still_need_to_be_exceptions():
    for stem in LONG_MODULES:
        path = REPO / "course_lib" / f"{stem}.py"
        assert len(path.read_text(encoding="utf-8").splitlines()) > MAX_MODULE_LINES, stem
    for (stem, name), reason in LONG_FUNCTIONS.items():
        found = dict(functions((REPO / "course_lib" / f"{stem}.py").read_text()))
        assert found.get(name, 0) > MAX_FUNCTION_LINES and reason, (stem, name)
