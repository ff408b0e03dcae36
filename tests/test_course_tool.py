"""tools/course.py, the course's entry point: Python checks, idempotent set-up, bad input."""

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import course
import pytest

REPO = Path(__file__).resolve().parents[1]
TOOL = str(REPO / "tools" / "course.py")


def fake_python(tmp_path, version, has_ensurepip=True):
    """An executable that answers the tool's probes like a Python of `version` would."""
    script = tmp_path / f"python{version}"
    venv_probe = "exit 0" if has_ensurepip else "echo 'No module named ensurepip' >&2; exit 1"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            case "$2" in
              *version_info*) echo "{version.replace(".", " ")}" ;;
              *ensurepip*) {venv_probe} ;;
              *) exit 3 ;;
            esac
            """
        )
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def run_tool(*args, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, TOOL, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO,
        timeout=timeout,
    )


def test_too_old_python_prints_the_fix(tmp_path):
    old = fake_python(tmp_path, "3.8")
    venv = tmp_path / "venv"  # a venv that does not exist yet: the tool must look for Python
    out = run_tool("setup", env={"COURSE_PYTHON": str(old), "COURSE_VENV": str(venv)})
    assert out.returncode != 0
    assert "This course needs Python 3.10 or newer; found:" in out.stderr
    assert "3.8" in out.stderr and "sudo apt install python3.12 python3.12-venv" in out.stderr
    assert not venv.exists()


def test_missing_venv_module_prints_the_fix(tmp_path):
    broken = fake_python(tmp_path, "3.12", has_ensurepip=False)
    out = run_tool("setup", env={"COURSE_PYTHON": str(broken), "COURSE_VENV": str(tmp_path / "v")})
    assert out.returncode != 0
    assert "cannot create virtual environments" in out.stderr
    assert "sudo apt install python3.12-venv" in out.stderr


def test_fix_messages_per_platform(monkeypatch):
    monkeypatch.setattr(course.platform, "system", lambda: "Darwin")
    assert "brew install python@3.12" in course.python_fix_message(["python3 3.9"])
    monkeypatch.setattr(course.platform, "system", lambda: "Windows")
    assert "WSL2" in course.python_fix_message([])
    assert "found: none" in course.python_fix_message([])


def test_unknown_command_lists_the_commands():
    out = run_tool("labb")
    assert out.returncode == 2
    assert "unknown command ['labb']; expected one of: setup, lab, test" in out.stdout


def test_lab_port_must_be_a_number():
    out = run_tool("lab", "--port", "eighty")
    assert out.returncode != 0 and "--port expects a number, got 'eighty'" in out.stderr


def test_lock_usage():
    out = run_tool("lock", "--fast")
    assert out.returncode != 0 and "usage: course.py lock" in out.stderr


def test_fingerprint_follows_what_the_install_depends_on(monkeypatch):
    monkeypatch.delenv("COURSE_TORCH", raising=False)
    monkeypatch.delenv("COURSE_TORCH_INDEX", raising=False)
    base = course.env_fingerprint((3, 11))
    assert course.env_fingerprint((3, 11)) == base
    assert course.env_fingerprint((3, 12)) != base
    monkeypatch.setenv("COURSE_TORCH", "torch==2.12.0")
    assert course.env_fingerprint((3, 11)) != base
    monkeypatch.delenv("COURSE_TORCH")
    monkeypatch.setenv("COURSE_TORCH_INDEX", "https://download.pytorch.org/whl/cpu")
    assert course.env_fingerprint((3, 11)) != base


def test_setup_is_idempotent():
    first = run_tool("setup", timeout=900)
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_tool("setup")
    assert second.returncode == 0
    assert "environment up to date" in second.stdout and "pip install" not in second.stdout


def test_kernelspec_runs_the_venv_python():
    spec = json.loads(
        (Path(course.kernels_dir()) / "kernels" / "python3" / "kernel.json").read_text()
    )
    # jupyter_client replaces "python" with the server's own interpreter, the venv's.
    assert spec["argv"][:3] == ["python", "-m", "ipykernel_launcher"]
    env = course.course_env()
    assert env["JUPYTER_PATH"].split(os.pathsep)[0] == course.kernels_dir()


@pytest.mark.parametrize(
    "command", ["setup", "lab", "test", "format", "execute", "render", "lock", "train"]
)
def test_makefile_targets_call_the_tool(command):
    makefile = (REPO / "Makefile").read_text()
    assert f"{command}:\n\t$(PYTHON) tools/course.py {command}\n" in makefile


def test_pins_from_freeze():
    frozen = "\n".join(
        [
            "Torch==2.13.0+cpu",
            "numpy==2.4.6",
            "-e git+https://example.invalid/x#egg=llm-course-lib",
            "mylib @ file:///somewhere/mylib.whl",
            "# a comment",
            "",
            "anyio==4.16.0",
        ]
    )
    assert course.pins_from_freeze(frozen) == ["anyio==4.16.0", "numpy==2.4.6", "Torch==2.13.0"]


def test_the_python_running_the_command_is_preferred(monkeypatch):
    monkeypatch.delenv("COURSE_PYTHON", raising=False)
    exe, version = course.find_python()
    assert exe == sys.executable and version == sys.version_info[:2]


def test_train_runs_the_trainer_in_the_venv(monkeypatch):
    calls = []
    monkeypatch.setattr(course, "ensure_env", lambda quiet=False: "/venv/bin/python")
    monkeypatch.setattr(course, "run", lambda cmd, **kw: calls.append(cmd) or 0)
    assert course.main(["train", "--preset", "ci", "--out", "runs/x"]) == 0
    assert calls == [["/venv/bin/python", "-m", "course_lib.train", "--preset", "ci", "--out",
                      "runs/x"]]  # fmt: skip
