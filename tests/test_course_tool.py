"""tools/course.py, the course's entry point: Python checks, idempotent set-up, bad input.

Hermetic: every test that sets up an environment points COURSE_VENV into its own tmp dir and
replaces `course.install` (pip and a package index) with a fake, so the set-up logic (fingerprint,
idempotence, pip repair, the lock, warn-and-go-on, never deleting a user's directory) runs
offline in seconds. Virtual environments are real (`python -m venv`, which needs no network).
"""

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import course
import pytest

REPO = Path(__file__).resolve().parents[1]
TOOL = str(REPO / "tools" / "course.py")
# What a caller's shell may export that changes how the tool installs; no test inherits them.
INSTALL_VARIABLES = (
    "COURSE_VENV",
    "COURSE_PYTHON",
    "COURSE_TORCH",
    "COURSE_TORCH_INDEX",
    "COURSE_CONSTRAINTS",
    "COURSE_STRICT_CONSTRAINTS",
)
STALE = "made before pyproject.toml changed"


@pytest.fixture
def venv(monkeypatch, tmp_path):
    """COURSE_VENV in this test's tmp dir (not created yet), none of the caller's settings."""
    for name in INSTALL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "venv"
    monkeypatch.setenv("COURSE_VENV", str(path))
    return path


class FakeInstaller:
    """Stands in for `course.install(constraints)`: records each call and, like pip, fails
    where the environment has no working pip (and always, when `ok` is False: offline)."""

    def __init__(self):
        self.ok = True
        self.calls = []

    def __call__(self, constraints):
        self.calls.append(constraints)
        pip = subprocess.run([course.venv_python(), "-m", "pip", "--version"], capture_output=True)
        return self.ok and pip.returncode == 0


@pytest.fixture
def installer(monkeypatch):
    fake = FakeInstaller()
    monkeypatch.setattr(course, "install", fake)
    return fake


def make_venv(path, pip=True):
    """A real venv, made offline in a fraction of a second: without pip (as `python -m venv`
    leaves one when it is killed before ensurepip ran), or with a stand-in `pip` module that
    answers `python -m pip` (installing the real one takes seconds)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    if pip:
        (site,) = path.glob("lib/python3.*/site-packages")
        (site / "pip").mkdir()
        (site / "pip" / "__init__.py").write_text("")
        (site / "pip" / "__main__.py").write_text("print('pip 0 (a stand-in for the tests)')\n")
    return path


def make_stale_env(path):
    """A working environment whose stamp no longer matches (pyproject.toml changed since)."""
    make_venv(path)
    (path / "course-env.json").write_text(json.dumps({"fingerprint": STALE, "constraints": True}))


def stamp(path):
    return json.loads((path / "course-env.json").read_text())


def pip_version(path):
    out = subprocess.run(
        [str(path / "bin" / "python"), "-m", "pip", "--version"], capture_output=True, text=True
    )
    return out.stdout if out.returncode == 0 else None


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


def test_setup_is_idempotent(venv, installer, capsys):
    assert course.main(["setup"]) == 0
    assert installer.calls == [True], "one install, with constraints.txt"
    assert (venv / "pyvenv.cfg").is_file() and "site-packages/pip" in pip_version(venv)
    assert stamp(venv)["fingerprint"] == course.env_fingerprint(sys.version_info[:2])
    capsys.readouterr()
    assert course.main(["setup"]) == 0
    assert installer.calls == [True], "the second run installs nothing"
    assert "environment up to date: " + str(venv) in capsys.readouterr().out


def test_kernelspec_runs_the_venv_python(venv):
    course.write_kernelspec()
    spec_file = venv / "share" / "course-jupyter" / "kernels" / "python3" / "kernel.json"
    spec = json.loads(spec_file.read_text())
    # jupyter_client replaces "python" with the server's own interpreter, the venv's.
    assert spec["argv"][:3] == ["python", "-m", "ipykernel_launcher"]
    env = course.course_env()
    assert (
        env["JUPYTER_PATH"].split(os.pathsep)[0]
        == course.kernels_dir()
        == str(spec_file.parents[2])
    )
    assert env["VIRTUAL_ENV"] == str(venv)


@pytest.mark.parametrize("layout", ["user files", "a python but no pyvenv.cfg"])
def test_a_directory_that_is_not_a_venv_is_never_removed(venv, installer, layout):
    venv.mkdir()
    (venv / "thesis.tex").write_text("two years of work")
    if layout == "a python but no pyvenv.cfg":  # say COURSE_VENV=/usr/local by mistake
        (venv / "bin").mkdir()
        (venv / "bin" / "python").symlink_to(sys.executable)
    with pytest.raises(SystemExit) as stop:
        course.main(["setup"])
    message = str(stop.value)
    assert f"{venv} is not a virtual environment (it has no pyvenv.cfg)" in message
    assert "COURSE_VENV" in message and "run the command again" in message
    assert (venv / "thesis.tex").read_text() == "two years of work"
    assert sorted(p.name for p in venv.iterdir()) == sorted(
        ["thesis.tex"] + (["bin"] if layout != "user files" else [])
    )
    assert installer.calls == [], "nothing is installed into it either"


def test_a_venv_without_its_python_is_recreated(venv, installer):
    make_venv(venv)
    (venv / "leftover").write_text("from the interrupted run")
    (venv / "bin" / "python").unlink()
    assert course.main(["setup"]) == 0
    assert not (venv / "leftover").exists() and (venv / "bin" / "python").exists()
    assert installer.calls == [True] and "fingerprint" in stamp(venv)


def test_a_venv_without_pip_is_repaired(venv, installer, capsys):
    make_venv(venv, pip=False)
    (venv / "kept").write_text("the venv is repaired, not recreated")
    assert course.main(["setup"]) == 0
    assert installer.calls == [True], "the first install already found a working pip"
    assert "site-packages/pip" in pip_version(venv) and (venv / "kept").exists()
    out = capsys.readouterr().out
    assert f"{venv} has no working pip" in out and "ensurepip" in out
    assert "constraints.txt" not in out, "the pins are not blamed"


def test_a_venv_whose_pip_cannot_be_repaired_is_recreated(venv, installer, monkeypatch):
    make_venv(venv, pip=False)
    (venv / "leftover").write_text("from the interrupted run")
    monkeypatch.setattr(course, "repair_pip", lambda: False)
    assert course.main(["setup"]) == 0
    assert not (venv / "leftover").exists() and "site-packages/pip" in pip_version(venv)
    assert installer.calls == [True]


@pytest.mark.parametrize("command", ["lab", "train"])
def test_a_failed_reinstall_warns_and_goes_on(venv, installer, monkeypatch, capsys, command):
    make_stale_env(venv)
    installer.ok = False  # offline: pip finds no package index
    started = []
    monkeypatch.setattr(course, "run", lambda cmd, **kw: started.append(cmd) or 0)
    monkeypatch.setattr(os, "execve", lambda exe, cmd, env: started.append(cmd))
    monkeypatch.chdir(REPO)  # the lab changes to the clone before it starts JupyterLab
    assert course.main([command, "--no-browser"] if command == "lab" else [command]) == 0
    assert started and started[0][0] == course.venv_python()
    assert installer.calls == [True, False], "pinned, then newest versions: both failed"
    err = capsys.readouterr().err
    assert f"the environment in {venv} may be out of date" in err
    assert "pip install failed" in err
    assert f"to start clean, delete {venv} and run the command again" in err
    assert stamp(venv)["fingerprint"] == STALE, "the next run tries the install again"


@pytest.mark.parametrize(
    "command, strict, had_stamp",
    [("setup", "", True), ("train", "1", True), ("lab", "", False)],
    ids=["setup-itself", "strict-ci", "first-install"],
)
def test_a_failed_install_stops_setup_ci_and_a_first_install(
    venv, installer, monkeypatch, command, strict, had_stamp
):
    make_stale_env(venv) if had_stamp else make_venv(venv)
    installer.ok = False
    monkeypatch.setenv("COURSE_STRICT_CONSTRAINTS", strict)
    started = []
    monkeypatch.setattr(course, "run", lambda cmd, **kw: started.append(cmd) or 0)
    monkeypatch.setattr(os, "execve", lambda exe, cmd, env: started.append(cmd))
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as stop:
        course.main([command])
    assert "failed" in str(stop.value)
    assert started == []
    assert not had_stamp or stamp(venv)["fingerprint"] == STALE


LOCK_DRIVER = """\
import os, sys, time
sys.path.insert(0, {tools!r})
import course

def install(constraints):  # a slow install that goes on once the test says so (at most 30 s)
    with open(os.environ["INSTALL_LOG"], "a") as log:
        log.write("start %d\\n" % os.getpid())
    deadline = time.time() + 30
    while not os.path.exists(os.environ["INSTALL_GO_ON"]) and time.time() < deadline:
        time.sleep(0.05)
    with open(os.environ["INSTALL_LOG"], "a") as log:
        log.write("end %d\\n" % os.getpid())
    return True

course.install = install
sys.exit(course.main(sys.argv[1:]))
"""


def test_two_first_installs_wait_for_each_other(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(LOCK_DRIVER.format(tools=str(REPO / "tools")))
    log, go_on, venv = tmp_path / "install.log", tmp_path / "go-on", tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in INSTALL_VARIABLES}
    env.update(COURSE_VENV=str(venv), INSTALL_LOG=str(log), INSTALL_GO_ON=str(go_on))

    def start():
        return subprocess.Popen(
            [sys.executable, str(driver), "setup"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )

    first = start()
    deadline = time.time() + 120
    while not (log.exists() and log.read_text()) and time.time() < deadline:
        time.sleep(0.05)  # the first process has made the venv and is installing into it
    second = start()
    seen = []
    for line in second.stdout:  # the second one waits for the first, then finds it done
        seen.append(line)
        if "waiting" in line:
            break
    go_on.touch()
    out_second = "".join(seen) + second.communicate(timeout=120)[0]
    out_first = first.communicate(timeout=120)[0]
    assert first.returncode == 0, out_first
    assert second.returncode == 0, out_second
    assert log.read_text() == f"start {first.pid}\nend {first.pid}\n", "one install only"
    assert f"another course command is setting up {venv}; waiting" in out_second
    assert "environment up to date" in out_second and "creating" not in out_second
    assert "site-packages/pip" in pip_version(venv)


def test_venv_fix_message_names_packages_that_exist():
    message = course.venv_fix_message("/usr/bin/python3.12", (3, 12))
    assert "sudo apt install python3.12-venv" in message
    # Fedora's packages are python3.12, python3.13, ... and include venv and ensurepip.
    assert "sudo dnf install python3.12" in message and "python312" not in message


def test_students_out_needs_a_value():
    out = subprocess.run(
        [sys.executable, str(REPO / "tools" / "notebooks.py"), "students", "--out"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "usage: notebooks.py students [NOTEBOOK ...] [--out DIR]" in out.stderr
    assert "--out needs a directory" in out.stderr


@pytest.mark.parametrize(
    "command",
    ["setup", "lab", "test", "format", "execute", "render", "lock", "train", "models"],
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


def test_models_runs_the_model_builder_in_the_venv(monkeypatch):
    calls = []
    monkeypatch.setattr(course, "ensure_env", lambda quiet=False: "/venv/bin/python")
    monkeypatch.setattr(course, "run", lambda cmd, **kw: calls.append(cmd) or 0)
    assert course.main(["models", "reference"]) == 0
    assert calls == [["/venv/bin/python", "-m", "course_lib.models", "reference"]]


def test_the_test_command_uses_every_core_with_whole_notebooks_per_worker(monkeypatch):
    monkeypatch.setattr(course, "cpu_count", lambda: 2)
    assert course.xdist_args([]) == ["-n", "2", "--dist", "loadscope"]
    monkeypatch.setattr(course, "cpu_count", lambda: 64)  # capped: a worker holds a kernel
    assert course.xdist_args(["-k", "device"])[:2] == ["-n", str(course.MAX_TEST_WORKERS)]
    monkeypatch.setattr(course, "cpu_count", lambda: 1)
    assert course.xdist_args([]) == []
    for chosen in (["-n", "1"], ["-n3"], ["--numprocesses=2"], ["-p", "no:xdist"]):
        monkeypatch.setattr(course, "cpu_count", lambda: 2)
        assert course.xdist_args(chosen) == [], chosen
