#!/usr/bin/env python3
"""The course's one entry point: set up, open, test, re-execute and re-pin.

    python3 tools/course.py lab       # open the course in JupyterLab (sets itself up first)
    python3 tools/course.py test      # lint + unit tests + every notebook under strict nbval
    python3 tools/course.py execute   # re-run notebooks (ci profile) and store their outputs
    python3 tools/course.py lock      # upgrade constraints.txt, re-execute, test
    python3 tools/course.py students  # student notebooks (solutions stubbed) in build/students/
    python3 tools/course.py train     # train the course GPT (python -m course_lib.train --help)
    python3 tools/course.py models    # retrain the shipped models into data/models/ (or NAME ...)
    python3 tools/course.py setup     # only create / update the virtual environment
    python3 tools/course.py site      # the course website in build/site/ (nothing executed)
    python3 tools/course.py slides    # a reveal.js deck per notebook in build/slides/
    python3 tools/course.py syllabus  # build/syllabus/: syllabus, schedule, glossary pages
    python3 tools/course.py pack      # build/student-pack.zip: student notebooks, library, data

Every command first makes sure `.venv/` exists and matches pyproject.toml, constraints.txt and
the torch choice; the check is a hash, so the second run installs nothing. A venv left without
pip (an interrupted set-up) is repaired with ensurepip, or made anew; only a directory that is a
virtual environment (holds pyvenv.cfg) is ever deleted. Two commands setting up at once take turns
(a lock file beside the venv). When a re-install fails (offline, say) and an environment from an
earlier install exists, the commands warn that it may be out of date and go on with it; `setup`
itself, and every command under COURSE_STRICT_CONSTRAINTS=1 (CI), stop instead. This file uses
only the standard library and old-Python syntax on purpose: it must be able to run under whatever
`python3` a machine has, if only to say how to get a suitable one.

Environment variables (all optional):
    COURSE_PYTHON            interpreter for the virtual environment (default: the newest found)
    COURSE_TORCH             torch requirement (default "torch", pinned by constraints.txt)
    COURSE_TORCH_INDEX       package index for torch, e.g. https://download.pytorch.org/whl/cpu
    COURSE_CONSTRAINTS       "none" to install without constraints.txt
    COURSE_STRICT_CONSTRAINTS  "1": fail when the pins do not install, instead of falling back to
                             the newest versions or to an out-of-date environment (CI)
    COURSE_VENV              where the virtual environment lives (default: .venv in the clone)
"""

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONSTRAINTS = os.path.join(REPO, "constraints.txt")
MIN_PYTHON = (3, 10)
CANDIDATES = ["python3.13", "python3.12", "python3.11", "python3.10", "python3", "python"]
LINT_PATHS = ["course_lib", "tests", "tools", "notebooks", "data", "bench", "site", "conftest.py"]


def lint_paths():
    """LINT_PATHS that exist here (the student pack has no site/; ruff fails on a missing path)."""
    return [p for p in LINT_PATHS if os.path.exists(os.path.join(REPO, p))]


def say(msg):
    print("[course] " + msg, flush=True)


def warn(msg):
    sys.stderr.write("[course] warning: " + msg + "\n")
    sys.stderr.flush()


def venv_dir():
    return os.environ.get("COURSE_VENV") or os.path.join(REPO, ".venv")


def venv_python():
    sub = "Scripts" if os.name == "nt" else "bin"
    exe = "python.exe" if os.name == "nt" else "python"
    return os.path.join(venv_dir(), sub, exe)


def kernels_dir():
    """A Jupyter data dir holding the course's `python3` kernelspec (see write_kernelspec)."""
    return os.path.join(venv_dir(), "share", "course-jupyter")


# --------------------------------------------------------------------------- python checks


def python_version(exe):
    """(major, minor) of an interpreter, or None when it does not run."""
    try:
        out = subprocess.run(
            [exe, "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    major, minor = out.stdout.split()
    return int(major), int(minor)


def python_fix_message(found):
    """The exact commands that get a Python >= 3.10 on this kind of machine."""
    system = platform.system()
    lines = [
        "This course needs Python %d.%d or newer; found: %s."
        % (MIN_PYTHON + (", ".join(found) or "none",)),
        "Install one, then run the same command again:",
    ]
    if system == "Darwin":
        lines += [
            "  brew install python@3.12        # Homebrew, or the installer from python.org",
            "  COURSE_PYTHON=python3.12 python3 tools/course.py lab   # if python3 stays older",
        ]
    elif system == "Linux":
        lines += [
            "  Debian/Ubuntu: sudo apt install python3.12 python3.12-venv (22.04: python3.11)",
            "  Fedora:        sudo dnf install python3.12",
            "  any Linux:     conda env create -f environment.yml   (see README, 'Other set-ups')",
            "  then, if python3 stays older: COURSE_PYTHON=python3.12 python3 tools/course.py lab",
        ]
    else:
        lines += ["  On Windows use WSL2 (Ubuntu) or conda: see README, 'Other set-ups'."]
    return "\n".join(lines)


def venv_fix_message(exe, version):
    """The exact fix when `venv` or `ensurepip` is missing (Debian splits them out)."""
    tag = "%d.%d" % version
    return "\n".join(
        [
            "%s (Python %s) cannot create virtual environments: 'venv' or 'ensurepip' is missing."
            % (exe, tag),
            "Fix:",
            "  Debian/Ubuntu: sudo apt install python%s-venv" % tag,
            "  Fedora:        sudo dnf install python%s   (includes venv and ensurepip)" % tag,
            "  conda:         conda install pip   (or use environment.yml)",
            "  macOS:         reinstall Python from python.org or with brew install python@%s"
            % tag,
        ]
    )


def find_python():
    """The interpreter for a new virtual environment.

    COURSE_PYTHON if set; else the Python running this command (the `python3` the user typed)
    when it is new enough; else the newest suitable one on PATH.
    """
    wanted = os.environ.get("COURSE_PYTHON")
    if wanted:
        candidates = [wanted]
    elif sys.version_info[:2] >= MIN_PYTHON:
        candidates = [sys.executable]
    else:
        candidates = CANDIDATES
    found = []
    if not wanted and sys.version_info[:2] < MIN_PYTHON:
        found.append("%s %d.%d (running this command)" % ((sys.executable,) + sys.version_info[:2]))
    best = None
    for name in candidates:
        exe = shutil.which(name) or (name if os.path.isfile(name) else None)
        if not exe:
            continue
        version = python_version(exe)
        if version is None:
            continue
        found.append("%s %d.%d" % ((name,) + version))
        if version >= MIN_PYTHON and (best is None or version > best[1]):
            best = (exe, version)
    if best is None:
        raise SystemExit(python_fix_message(found))
    exe, version = best
    probe = subprocess.run(
        [exe, "-c", "import venv, ensurepip"], capture_output=True, text=True, timeout=60
    )
    if probe.returncode != 0:
        raise SystemExit(venv_fix_message(exe, version))
    return exe, version


# --------------------------------------------------------------------------- environment


def torch_requirement():
    return os.environ.get("COURSE_TORCH", "torch").strip() or "torch"


def use_constraints():
    return os.path.isfile(CONSTRAINTS) and os.environ.get("COURSE_CONSTRAINTS") != "none"


def strict_constraints():
    return os.environ.get("COURSE_STRICT_CONSTRAINTS") == "1"


def env_fingerprint(version):
    """What the installed environment depends on; a change means 'install again'."""
    h = hashlib.sha256()
    for path in (os.path.join(REPO, "pyproject.toml"), CONSTRAINTS):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                h.update(f.read())
    for part in (
        torch_requirement(),
        os.environ.get("COURSE_TORCH_INDEX", ""),
        os.environ.get("COURSE_CONSTRAINTS", ""),
        "%d.%d" % version,
        REPO,
    ):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


def stamp_path():
    return os.path.join(venv_dir(), "course-env.json")


def pip(args, constraints):
    cmd = [venv_python(), "-m", "pip", "install", "--disable-pip-version-check"]
    if constraints:
        cmd += ["-c", CONSTRAINTS]
    cmd += args
    say(" ".join(cmd[2:]))
    return subprocess.run(cmd, cwd=REPO).returncode


def install(constraints):
    # Distribution Pythons ship old pips (Debian 12: 23.0) whose resolver can wander into
    # other torch builds; a current pip resolves the pinned set directly.
    if pip(["--upgrade", "pip>=24.2"], False) != 0:
        return False
    torch_args = [torch_requirement()]
    index = os.environ.get("COURSE_TORCH_INDEX")
    if index:
        torch_args += ["--index-url", index]
    # torch first, from its own index if one is set; then the course and its extras.
    if pip(torch_args, constraints) != 0:
        return False
    return pip(["-e", ".[dev]"], constraints) == 0


def write_kernelspec():
    """A `python3` kernelspec that runs the venv's Python.

    The execute command and the lab put this folder first on JUPYTER_PATH, so a user-level
    `python3` kernelspec (say, from another Python) cannot silently take over. "python" as
    argv[0] is replaced by the server's own interpreter (jupyter_client does this).
    """
    spec_dir = os.path.join(kernels_dir(), "kernels", "python3")
    os.makedirs(spec_dir, exist_ok=True)
    spec = {
        "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (course .venv)",
        "language": "python",
        "metadata": {"debugger": True},
    }
    with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
        json.dump(spec, f, indent=1)


def is_venv(path):
    return os.path.isfile(os.path.join(path, "pyvenv.cfg"))


def check_venv_dir():
    """Stop unless the venv directory is absent, empty, or a virtual environment (pyvenv.cfg).

    Anything else (COURSE_VENV naming a project folder, or /usr/local) is neither installed
    into nor deleted.
    """
    path = venv_dir()
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and (is_venv(path) or not os.listdir(path)):
        return
    raise SystemExit(
        "%s is not a virtual environment (it has no pyvenv.cfg) and is not empty, so the course "
        "will neither install into it nor delete it. Point COURSE_VENV at a new directory (or "
        "unset it to use .venv in the clone), or move that one away; then run the command again."
        % path
    )


def remove_venv():
    """Delete the virtual environment so that it can be made anew; never anything else."""
    check_venv_dir()
    if is_venv(venv_dir()):
        shutil.rmtree(venv_dir())


def create_venv(exe, version):
    say("creating %s with %s (Python %d.%d)" % ((venv_dir(), exe) + version))
    if subprocess.run([exe, "-m", "venv", venv_dir()]).returncode != 0:
        raise SystemExit(
            "creating the virtual environment %s with %s failed; see the messages above"
            % (venv_dir(), exe)
        )


def pip_works():
    try:
        out = subprocess.run(
            [venv_python(), "-m", "pip", "--version"], capture_output=True, timeout=120
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0


def repair_pip():
    """Install pip into the venv with its own ensurepip (offline); True when pip then works."""
    say(
        "%s has no working pip (a set-up interrupted before pip was installed?); "
        "installing it with ensurepip" % venv_dir()
    )
    try:
        code = subprocess.run([venv_python(), "-m", "ensurepip", "--upgrade"]).returncode
    except OSError:
        return False
    return code == 0 and pip_works()


def read_stamp():
    """The stamp of the last complete install, or None."""
    try:
        with open(stamp_path()) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_stamp(fingerprint, constraints):
    tmp = stamp_path() + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"fingerprint": fingerprint, "constraints": constraints}, f)
    os.replace(tmp, stamp_path())


@contextlib.contextmanager
def venv_lock():
    """Hold an exclusive lock on `<venv>.lock` while the venv is checked, made or installed.

    The lock file sits beside the venv, not in it, because the venv may be deleted and made
    anew. A second command waits, then finds the environment up to date. Where there is no
    fcntl (Windows) or the file cannot be made, it goes on without the lock.
    """
    try:
        import fcntl
    except ImportError:
        fcntl = None
    path = os.path.normpath(os.path.abspath(venv_dir())) + ".lock"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        lock = open(path, "a")
    except OSError:
        lock = None
    if fcntl is None or lock is None:
        yield
        return
    with lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            say("another course command is setting up %s; waiting for it to finish" % venv_dir())
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def existing_venv_version():
    """The Python version of .venv when it exists, works and is new enough; else None."""
    vpy = venv_python()
    version = python_version(vpy) if os.path.isfile(vpy) else None
    if version is None or version < MIN_PYTHON:
        return None
    wanted = os.environ.get("COURSE_PYTHON")
    if wanted:
        exe = shutil.which(wanted) or wanted
        if python_version(exe) != version:
            return None  # COURSE_PYTHON asks for another interpreter: recreate
    return version


def ensure_env(quiet=False, must_install=False):
    """Create or update .venv so that it matches the repo's files; idempotent.

    An existing, working .venv keeps its interpreter (installing a newer Python later does not
    silently rebuild it); COURSE_PYTHON naming another interpreter does. When the install fails
    and an earlier install's environment exists, this warns and returns it, unless
    `must_install` (the `setup` command) or COURSE_STRICT_CONSTRAINTS=1 (CI) asks to stop.
    """
    with venv_lock():
        return _ensure_env(quiet, must_install or strict_constraints())


def _ensure_env(quiet, must_install):
    check_venv_dir()
    vpy = venv_python()
    version = existing_venv_version()
    exe = None
    if version is None:
        exe, version = find_python()
    fingerprint = env_fingerprint(version)
    previous = read_stamp() if exe is None else None
    if previous is not None and previous.get("fingerprint") == fingerprint:
        if not quiet:
            say("environment up to date: " + venv_dir())
        return vpy
    if exe is None and not pip_works() and not repair_pip():
        say("ensurepip did not repair pip; making %s anew" % venv_dir())
        exe, version = find_python()
        fingerprint = env_fingerprint(version)
        previous = None
    if exe is not None:
        if is_venv(venv_dir()):
            say("recreating %s for Python %d.%d" % ((venv_dir(),) + version))
        remove_venv()
        create_venv(exe, version)
    start = time.time()
    constraints = use_constraints()
    ok = install(constraints)
    if not ok and constraints:
        if strict_constraints():
            raise SystemExit("install with constraints.txt failed (COURSE_STRICT_CONSTRAINTS=1)")
        say(
            "installing the pinned versions in constraints.txt failed (see pip's messages above: "
            "no network, or pins made on Linux x86-64 that this platform lacks); installing the "
            "newest compatible versions instead. A few stored notebook outputs may then differ "
            "in their last digits."
        )
        ok = install(False)
    if not ok and previous is not None and not must_install:
        warn(
            "pip install failed (see its messages above), so the environment in %s may be out "
            "of date: it was installed for an earlier pyproject.toml, constraints.txt or torch "
            "choice. Going on with it; the next command tries the install again.\n"
            "  to start clean, delete %s and run the command again" % (venv_dir(), venv_dir())
        )
        return vpy
    if not ok:
        hint = ""
        if previous is not None:
            hint = (
                " %s still holds the previous environment; to start clean, delete it and "
                "run the command again." % venv_dir()
            )
        raise SystemExit("pip install failed; see the messages above." + hint)
    write_kernelspec()
    write_stamp(fingerprint, constraints)
    say("environment ready in %.0f s: %s" % (time.time() - start, venv_dir()))
    return vpy


def course_env():
    """Environment for everything run inside the venv."""
    env = dict(os.environ)
    bindir = os.path.dirname(venv_python())
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = venv_dir()
    env["JUPYTER_PATH"] = kernels_dir() + (
        os.pathsep + env["JUPYTER_PATH"] if env.get("JUPYTER_PATH") else ""
    )
    env.pop("PYTHONHOME", None)
    return env


def run(cmd, **kw):
    say(" ".join(cmd))
    return subprocess.run(cmd, cwd=REPO, env=course_env(), **kw).returncode


# --------------------------------------------------------------------------- commands


def cmd_setup(args):
    ensure_env(must_install=True)  # setup exists to install: a failed install stops it
    return 0


def cmd_lab(args):
    """Open the course: JupyterLab serving notebooks/ on localhost with the venv's kernel."""
    port, browser, extra = None, True, []
    it = iter(args)
    for a in it:
        if a == "--port":
            port = next(it, None)
        elif a.startswith("--port="):
            port = a.split("=", 1)[1]
        elif a == "--no-browser":
            browser = False
        else:
            extra.append(a)
    if port is not None and not str(port).isdigit():
        raise SystemExit("--port expects a number, got %r" % (port,))
    vpy = ensure_env(quiet=True)
    cmd = [
        vpy,
        "-m",
        "jupyterlab",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.root_dir=" + os.path.join(REPO, "notebooks"),
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        # Settings defaults of the course (tools/jupyter/settings/overrides.json): no "Would you
        # like to get notified about official Jupyter news?" pop-up, no update check. Read
        # from the clone; the learner's own settings (~/.jupyter/lab) still win and are not
        # touched.
        "--LabApp.app_settings_dir=" + os.path.join(REPO, "tools", "jupyter", "settings"),
    ]
    if port is not None:
        cmd.append("--ServerApp.port=" + str(port))
    if not browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI run as root; Jupyter refuses otherwise
    cmd += extra
    say("opening the course: " + " ".join(cmd[1:]))
    env = course_env()
    os.chdir(REPO)
    if os.name == "nt":
        return subprocess.run(cmd, env=env).returncode
    os.execve(vpy, cmd, env)
    return 0


MAX_TEST_WORKERS = 4  # each worker holds torch and one notebook kernel: about 1.5 GB


def cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def xdist_args(args):
    """pytest-xdist on every core (at most MAX_TEST_WORKERS), all cells of a notebook on one
    worker (`--dist loadscope`, as nbval requires), unless the caller chose (-n, -p no:xdist)."""
    chosen = any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in args)
    if chosen or "no:xdist" in args:
        return []
    workers = min(MAX_TEST_WORKERS, cpu_count())
    return ["-n", str(workers), "--dist", "loadscope"] if workers > 1 else []


def cmd_test(args):
    """Lint, then pytest: unit tests and every notebook through strict nbval."""
    vpy = ensure_env(quiet=True)
    start = time.time()
    failed = []
    if run([vpy, "-m", "ruff", "check"] + lint_paths()) != 0:
        failed.append("ruff check")
    if run([vpy, "-m", "ruff", "format", "--check"] + lint_paths()) != 0:
        failed.append("ruff format (run: python3 tools/course.py format)")
    lint_s = time.time() - start
    code = run([vpy, "-m", "pytest"] + xdist_args(args) + list(args))
    if code == 5:
        failed.append("pytest collected no tests")
    elif code != 0:
        failed.append("pytest")
    say("lint %.0f s, total %.0f s" % (lint_s, time.time() - start))
    if failed:
        say("FAILED: " + ", ".join(failed))
        return 1
    return 0


def cmd_format(args):
    vpy = ensure_env(quiet=True)
    run([vpy, "-m", "ruff", "check", "--fix", "--exit-zero"] + lint_paths())
    return run([vpy, "-m", "ruff", "format"] + lint_paths())


def cmd_execute(args):
    """Format, then execute notebooks in the ci profile, store outputs, record run times."""
    vpy = ensure_env(quiet=True)
    return run([vpy, os.path.join(REPO, "tools", "notebooks.py"), "execute"] + list(args))


def cmd_train(args):
    """Train the course GPT with course_lib.train on whatever device this machine has."""
    vpy = ensure_env(quiet=True)
    return run([vpy, "-m", "course_lib.train"] + list(args))


def cmd_models(args):
    """Train the shipped models (all, or those named) and write them to data/models/."""
    vpy = ensure_env(quiet=True)
    return run([vpy, "-m", "course_lib.models"] + list(args))


def cmd_students(args):
    """Student notebooks (solutions stubbed, outputs cleared) in build/students/."""
    vpy = ensure_env(quiet=True)
    return run([vpy, os.path.join(REPO, "tools", "notebooks.py"), "students"] + list(args))


def cmd_render(args):
    vpy = ensure_env(quiet=True)
    return run([vpy, os.path.join(REPO, "tools", "coursemap.py"), "render"] + list(args))


def cmd_site(args):
    """The course website in build/site/: the notebooks as stored (nothing is executed)."""
    vpy = ensure_env(quiet=True)
    start = time.time()
    code = run([vpy, os.path.join(REPO, "tools", "site.py")] + list(args))
    say("site %s in %.1f s" % ("built" if code == 0 else "FAILED", time.time() - start))
    return code


def _tool_script(name, what):
    """A command that runs tools/NAME.py in the course environment and prints its time."""

    def command(args):
        vpy = ensure_env(quiet=True)
        start = time.time()
        code = run([vpy, os.path.join(REPO, "tools", name + ".py")] + list(args))
        say("%s %s in %.1f s" % (what, "built" if code == 0 else "FAILED", time.time() - start))
        return code

    command.__doc__ = "%s (tools/%s.py)." % (what, name)
    return command


cmd_slides = _tool_script("slides", "slide decks in build/slides/")
cmd_syllabus = _tool_script("syllabus", "syllabus and glossary pages in build/syllabus/")
cmd_pack = _tool_script("pack", "student pack build/student-pack.zip")


def pins_from_freeze(frozen):
    """Exact pins from `pip freeze` output, sorted; local labels dropped ('2.13.0+cpu' ->
    '2.13.0', which a CUDA or CPU build of that version both satisfy); editable and direct-URL
    lines skipped."""
    pins = []
    for line in frozen.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-e")) or " @ " in line or "==" not in line:
            continue
        name, _, ver = line.partition("==")
        pins.append("%s==%s" % (name.strip(), ver.split("+")[0].strip()))
    return sorted(pins, key=str.lower)


def cmd_lock(args):
    """Re-pin constraints.txt to the newest releases, then re-execute the notebooks and test.

    torch keeps its pinned version unless --torch VERSION is given: a new torch changes
    numbers in stored outputs, so moving it is a deliberate step.
    """
    torch_version, verify = None, True
    rest = list(args)
    while rest:
        a = rest.pop(0)
        if a == "--torch" and rest:
            torch_version = rest.pop(0)
        elif a == "--no-verify":
            verify = False
        else:
            raise SystemExit("usage: course.py lock [--torch VERSION] [--no-verify]")
    vpy = ensure_env(quiet=True)
    probe = subprocess.run(
        [vpy, "-c", "import torch; print(torch.__version__.split('+')[0])"],
        capture_output=True,
        text=True,
    )
    torch_version = torch_version or probe.stdout.strip()
    exe, version = find_python()
    scratch = os.path.join(REPO, "build", "lock-venv")
    if os.path.isdir(scratch):
        shutil.rmtree(scratch)
    subprocess.run([exe, "-m", "venv", scratch], check=True)
    spy = os.path.join(scratch, "bin", "python")
    torch_args = ["torch==" + torch_version]
    if os.environ.get("COURSE_TORCH_INDEX"):
        torch_args += ["--index-url", os.environ["COURSE_TORCH_INDEX"]]
    for extra in (torch_args, ["-e", ".[dev]"]):
        if subprocess.run([spy, "-m", "pip", "install", "-q"] + extra, cwd=REPO).returncode:
            raise SystemExit("lock: pip install failed")
    frozen = subprocess.run(
        [spy, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    pins = pins_from_freeze(frozen)
    header = [
        "# Full pin set for CI, the execute command and the test command.",
        "# Made by `python3 tools/course.py lock` on %s, Python %s, %s."
        % (
            platform.system() + " " + platform.machine(),
            platform.python_version(),
            time.strftime("%Y-%m-%d"),
        ),
        "# Stored notebook outputs were produced against exactly these versions.",
    ]
    with open(CONSTRAINTS, "w") as f:
        f.write("\n".join(header + pins) + "\n")
    shutil.rmtree(scratch)
    say("wrote %s (%d pins)" % (CONSTRAINTS, len(pins)))
    if not verify:
        return 0
    code = cmd_execute([])
    return code or cmd_test([])


COMMANDS = {
    "setup": cmd_setup,
    "lab": cmd_lab,
    "test": cmd_test,
    "format": cmd_format,
    "execute": cmd_execute,
    "students": cmd_students,
    "train": cmd_train,
    "models": cmd_models,
    "render": cmd_render,
    "site": cmd_site,
    "slides": cmd_slides,
    "syllabus": cmd_syllabus,
    "pack": cmd_pack,
    "lock": cmd_lock,
}


def main(argv):
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        print("unknown command %r; expected one of: %s" % (argv[:1], ", ".join(COMMANDS)))
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
