"""pyproject.toml is the single list of dependencies; environment.yml and constraints.txt agree."""

from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from course_lib.profile import tomllib

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
CONDA_NAMES = {"torch": "pytorch"}  # PyPI name -> conda-forge name where they differ
SELF = canonicalize_name(PYPROJECT["project"]["name"])


def pyproject_requirements():
    reqs = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    return [r for r in reqs if canonicalize_name(r.name) != SELF]


def conda_environment():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    plain = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = [d for d in env["dependencies"] if isinstance(d, dict)]
    return env, plain, pip


def test_environment_uses_conda_forge_only():
    env, _, _ = conda_environment()
    assert env["channels"] == ["conda-forge"]


def test_every_dependency_is_in_environment_yml_with_the_same_floor():
    _, plain, pip = conda_environment()
    conda = {}
    pip_only = [d for d in pip[0]["pip"] if not d.startswith("-e")]  # packages not on conda-forge
    for dep in plain + [d.split("#")[0].strip() for d in pip_only]:
        r = Requirement(dep)
        conda[canonicalize_name(r.name)] = str(r.specifier)
    for r in pyproject_requirements():
        name = canonicalize_name(CONDA_NAMES.get(r.name, r.name))
        assert name in conda, f"{r.name} is in pyproject.toml but not in environment.yml"
        assert conda[name] == str(r.specifier), f"{r.name}: {conda[name]} vs {r.specifier}"
    pypi_names = {
        canonicalize_name(CONDA_NAMES.get(r.name, r.name)) for r in pyproject_requirements()
    }
    extra = set(conda) - pypi_names - {"python", "pip"}
    assert not extra, f"in environment.yml but not in pyproject.toml: {sorted(extra)}"


def test_environment_installs_the_course_with_pip():
    _, plain, pip = conda_environment()
    assert "pip" in plain
    assert len(pip) == 1 and pip[0]["pip"][-1] == "-e .[dev]"


def test_course_packages_are_listed():
    _, plain, _ = conda_environment()
    names = {canonicalize_name(Requirement(d).name) for d in plain}
    assert {"pytorch", "jupyterlab", "matplotlib", "numpy", "nbval", "pytest"} <= names


def test_python_floor_agrees():
    _, plain, _ = conda_environment()
    assert "python>=3.10" in plain
    assert PYPROJECT["project"]["requires-python"] == ">=3.10"


def constraints():
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            assert "+" not in version, f"{line!r}: no local labels (2.13.0, not 2.13.0+cpu)"
            key = canonicalize_name(name)
            assert key not in pins, f"{name} is pinned twice"
            pins[key] = version
    return pins


def test_constraints_are_a_full_pin_set():
    pins = constraints()
    assert pins["torch"] == "2.13.0"
    for r in pyproject_requirements():
        if r.marker is not None and not r.marker.evaluate({"python_version": "3.11"}):
            continue  # tomli: only on Python 3.10
        name = canonicalize_name(r.name)
        assert name in pins, f"{r.name} is not pinned in constraints.txt"
        assert r.specifier.contains(pins[name]), f"{r.name}=={pins[name]} violates {r.specifier}"
    assert SELF not in pins, "the course itself is never pinned"
    assert len(pins) > 50, "a full pin set includes the transitive dependencies"


def test_ci_installs_the_pinned_cpu_torch_and_runs_the_readme_command():
    ci = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert 'COURSE_TORCH="torch==2.13.0"' in ci and "COURSE_STRICT_CONSTRAINTS=1" in ci
    assert "python3 tools/course.py test" in ci and "python3 tools/course.py test" in readme
    assert "set -euo pipefail" in ci
