"""The open-the-course command serves notebooks/ with a kernel from this clone's environment.

Starts `tools/course.py lab` on a free port, opens a notebook session (and so a kernel) through
the Jupyter server's REST API, runs code in it over the kernel's websocket, checks where
course_lib and the interpreter come from, and shuts everything down. A decoy user-level
`python3` kernelspec pointing at a program that cannot run a kernel, made to take precedence
(JUPYTER_PREFER_ENV_PATH=0), proves that the course's own kernelspec wins.
"""

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import course
from tornado.websocket import websocket_connect

REPO = Path(__file__).resolve().parents[1]
CODE = (
    "import course_lib, sys, os; print(course_lib.__file__, sys.executable, os.getcwd(), sep='\\n')"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(port, token, path, method="GET", body=None, timeout=30):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        text = r.read().decode()
    return json.loads(text) if text else None


def wait_until_up(proc, port, token, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the lab command exited with {proc.returncode}")
        try:
            return api(port, token, "/api/status", timeout=5)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise AssertionError(f"no Jupyter server on port {port} after {timeout} s")


async def execute(port, token, kernel_id, code, timeout=120):
    """Run code in a kernel over its websocket; return what it printed to stdout."""
    ws = await websocket_connect(
        f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels?token={token}"
    )
    msg_id = uuid.uuid4().hex
    ws.write_message(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "username": "test",
                    "session": uuid.uuid4().hex,
                    "msg_type": "execute_request",
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "content": {"code": code, "silent": False, "store_history": False},
                "channel": "shell",
                "buffers": [],
            }
        )
    )
    out, done, errors = [], False, []
    deadline = time.monotonic() + timeout
    while not done:
        raw = await asyncio.wait_for(ws.read_message(), deadline - time.monotonic())
        assert raw is not None, "the kernel's websocket closed"
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["header"]["msg_type"]
        if kind == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])
        elif kind == "error":
            errors.append(msg["content"]["evalue"])
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            done = True
    ws.close()
    assert not errors, errors
    return "".join(out)


def test_open_the_course_serves_a_kernel_from_this_clone(tmp_path):
    port, token = free_port(), secrets.token_hex(16)
    decoy = tmp_path / "data" / "kernels" / "python3"
    decoy.mkdir(parents=True)
    (decoy / "kernel.json").write_text(
        json.dumps(
            {
                "argv": ["/bin/false", "{connection_file}"],
                "display_name": "decoy",
                "language": "python",
            }
        )
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        # Let user-level kernelspecs win over the venv's own (as they do outside a venv), so
        # that only the lab command's JUPYTER_PATH keeps the decoy out.
        "JUPYTER_PREFER_ENV_PATH": "0",
    }
    env.pop("JUPYTER_PATH", None)  # as in a learner's shell: only the lab command sets it
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "tools" / "course.py"),
            "lab",
            "--no-browser",
            "--port",
            str(port),
            f"--IdentityProvider.token={token}",
        ],
        env=env,
        cwd=tmp_path,  # the command must not depend on where it is started
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        status = wait_until_up(proc, port, token)
        assert status is not None
        contents = api(port, token, "/api/contents")
        names = {item["name"] for item in contents["content"]}
        assert "00_setup_and_doctor.ipynb" in names, "the server serves notebooks/"
        # What JupyterLab does when a notebook is opened: a session for that path.
        session = api(
            port,
            token,
            "/api/sessions",
            method="POST",
            body={
                "path": "00_setup_and_doctor.ipynb",
                "type": "notebook",
                "kernel": {"name": "python3"},
            },
        )
        kernel = session["kernel"]
        printed = asyncio.run(execute(port, token, kernel["id"], CODE))
        lib_file, executable, cwd = printed.strip().splitlines()
        venv = Path(course.venv_dir())
        assert Path(lib_file).resolve().is_relative_to(REPO / "course_lib"), lib_file
        assert Path(os.path.abspath(executable)).is_relative_to(venv), executable
        assert Path(cwd).resolve() == (REPO / "notebooks").resolve()
        api(port, token, f"/api/sessions/{session['id']}", method="DELETE")
        assert api(port, token, "/api/kernels") == []
        api(port, token, "/api/shutdown", method="POST")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
    # Nothing of the server's session is left running.
    try:
        os.killpg(proc.pid, 0)
        leftover = True
    except ProcessLookupError:
        leftover = False
    assert not leftover, "processes of the lab session are still running"
