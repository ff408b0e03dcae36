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
import time
import uuid
from pathlib import Path

import course
from browser import api, start_lab
from tornado.websocket import websocket_connect

REPO = Path(__file__).resolve().parents[1]
CODE = (
    "import course_lib, sys, os; print(course_lib.__file__, sys.executable, os.getcwd(), sep='\\n')"
)


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
    # start_lab (tests/browser.py) gives the server throw-away Jupyter config, data (holding the
    # decoy) and runtime dirs, and a learner's JUPYTER_PATH (none). Let user-level kernelspecs
    # win over the venv's own (as they do outside a venv), so that only the lab command's
    # JUPYTER_PATH keeps the decoy out.
    with start_lab(tmp_path, env={"JUPYTER_PREFER_ENV_PATH": "0"}) as lab:
        proc, port, token = lab.proc, lab.port, lab.token
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
    # Nothing of the server's session is left running.
    try:
        os.killpg(proc.pid, 0)
        leftover = True
    except ProcessLookupError:
        leftover = False
    assert not leftover, "processes of the lab session are still running"
