"""Headless Chromium for the browser tests, and the lab server they open (a helper, not a test).

Browser tests drive Debian's `chromium` through Playwright for Python (sync API) with
`executable_path`: Playwright never downloads a browser of its own here (`playwright install`
is not needed and must not be run). Every page is watched: console errors, uncaught page
errors and every request that would leave localhost are recorded, and requests to other hosts
are aborted before they go out, so a test can assert that the page is self-contained.

    from browser import open_page

    def test_something():
        with open_page("site_index") as w:          # skips when chromium/playwright are missing
            w.page.goto("http://127.0.0.1:8000/")
            w.screenshot("site_index")              # build/browser/site_index.png
            w.assert_clean()                        # no console errors, nothing left localhost

API (kept stable; other test modules import it):
    require_browser() -> str        chromium's path, or pytest.skip (pytest.fail when
                                    COURSE_REQUIRE_BROWSER=1) saying how to install what is
                                    missing
    find_chromium() -> str | None   $COURSE_CHROMIUM, else /usr/bin/chromium, else `chromium`
                                    on PATH
    chromium() -> ctx[Browser]      a launched headless Chromium (fresh temporary profile)
    watch(browser, name, ...) -> ctx[WatchedPage]   a new page in a new context, watched
    open_page(name, ...) -> ctx[WatchedPage]        both of the above in one
    WatchedPage: .page (playwright Page), .context, .console_errors, .page_errors,
                 .external_requests, .screenshot(name, full_page=False) -> Path,
                 .assert_no_console_errors(ignore=()), .assert_local_only(), .assert_clean()
    SHOTS = REPO/build/browser      where screenshots go (on an exception inside watch(), a
                                    screenshot `<name>-failure.png` is saved there too)
    is_local(url) -> bool           http(s)/ws(s) to localhost, 127.0.0.1 or ::1; data:, blob:,
                                    about: and file: never leave the machine either

The lab server (shared with tests/test_lab_server.py):
    free_port(), api(port, token, path, method="GET", body=None), wait_until_up(proc, port, token)
    start_lab(tmp_path, env=None, args=()) -> ctx[Lab]   `tools/course.py lab --no-browser` on a
        free port with a random token and throw-away Jupyter config/data/runtime dirs under
        tmp_path; Lab has .proc, .port, .token, .url(path), .api(path, ...); on exit the
        server's process group is ended (SIGTERM, then SIGKILL).

Environment: COURSE_CHROMIUM (path of a Chromium binary), COURSE_REQUIRE_BROWSER=1 (CI: a
missing browser fails instead of skipping). Both must be listed in TEST_SWITCHES
(tools/notebooks.py) or conftest's pinning of the kernel environment drops them.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "build" / "browser"

# Debian's chromium as root in a container without network: no sandbox (root), no GPU, and no
# background traffic (component updates, sync, QUIC probes, first-run pings) to hosts that the
# machine cannot reach. Playwright adds --headless and a fresh temporary --user-data-dir itself.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}
LOCAL_SCHEMES = {"data", "blob", "about", "file", "chrome", "chrome-extension", "devtools"}

INSTALL_HINT = (
    "The browser tests need Debian's Chromium and Playwright for Python:\n"
    "  sudo apt install chromium            (as root, in CI: apt-get install -y chromium)\n"
    "  .venv/bin/python -m pip install playwright\n"
    "Do not run `playwright install`: the tests use the system Chromium "
    "(or the binary named by COURSE_CHROMIUM)."
)


# --------------------------------------------------------------------------- finding the browser


def find_chromium() -> str | None:
    """$COURSE_CHROMIUM if set (only it), else /usr/bin/chromium, else `chromium` on PATH."""
    chosen = os.environ.get("COURSE_CHROMIUM")
    if chosen:
        return chosen if os.path.isfile(chosen) and os.access(chosen, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def _playwright_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as e:
        return f"Playwright for Python is not importable ({e})"
    return None


def require_browser() -> str:
    """The Chromium to launch; skip (or, with COURSE_REQUIRE_BROWSER=1, fail) when the browser
    or Playwright is missing, with the commands that install them."""
    problems = []
    exe = find_chromium()
    if exe is None:
        chosen = os.environ.get("COURSE_CHROMIUM")
        problems.append(
            f"COURSE_CHROMIUM={chosen} is not an executable file"
            if chosen
            else "no Chromium found (/usr/bin/chromium, or `chromium` on PATH)"
        )
    missing = _playwright_missing()
    if missing:
        problems.append(missing)
    if problems:
        msg = "; ".join(problems) + ".\n" + INSTALL_HINT
        if os.environ.get("COURSE_REQUIRE_BROWSER") == "1":
            pytest.fail("COURSE_REQUIRE_BROWSER=1 but " + msg, pytrace=False)
        pytest.skip(msg)
    return exe


def is_local(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return (parts.hostname or "") in LOCAL_HOSTS


# --------------------------------------------------------------------------- pages


@dataclass
class WatchedPage:
    page: object  # playwright.sync_api.Page
    context: object  # playwright.sync_api.BrowserContext
    name: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)

    def screenshot(self, name: str | None = None, full_page: bool = False) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name or self.name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def assert_no_console_errors(self, ignore=()) -> None:
        """No console.error and no uncaught exception, except messages containing a string of
        `ignore`."""
        errors = [
            e for e in self.console_errors + self.page_errors if not any(s in e for s in ignore)
        ]
        assert not errors, "errors in the browser console:\n" + "\n".join(errors)

    def assert_local_only(self) -> None:
        assert not self.external_requests, (
            "requests that would leave localhost (aborted):\n" + "\n".join(self.external_requests)
        )

    def assert_clean(self, ignore=()) -> None:
        self.assert_local_only()
        self.assert_no_console_errors(ignore)


@contextlib.contextmanager
def chromium():
    """A launched headless Debian Chromium (Playwright, sync API), closed afterwards."""
    exe = require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=exe,
            headless=True,
            args=CHROMIUM_ARGS,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def watch(browser, name: str = "page", width: int = 1400, height: int = 900, timeout_s=30):
    """A page in a fresh context of `browser`, with console errors, page errors and requests
    to other hosts recorded (those requests are aborted, so nothing leaves the machine)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(timeout_s * 1000)
    page = context.new_page()
    w = WatchedPage(page=page, context=context, name=name)

    def on_console(msg):
        if msg.type == "error":
            loc = msg.location or {}
            w.console_errors.append(
                f"{msg.text} ({loc.get('url', '')}:{loc.get('lineNumber', '')})"
            )

    def on_request(request):
        if not is_local(request.url):
            w.external_requests.append(f"{request.method} {request.url}")

    def on_websocket(ws):
        if not is_local(ws.url):
            w.external_requests.append(f"WEBSOCKET {ws.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: w.page_errors.append(f"uncaught: {exc}"))
    context.on("request", on_request)
    page.on("websocket", on_websocket)
    context.route(lambda url: not is_local(url), lambda route: route.abort("blockedbyclient"))
    try:
        yield w
    except BaseException:
        with contextlib.suppress(Exception):
            w.screenshot(f"{name}-failure")
        raise
    finally:
        with contextlib.suppress(Exception):
            context.close()


@contextlib.contextmanager
def open_page(name: str = "page", **kw):
    """chromium() and watch() in one: `with open_page("x") as w: w.page.goto(...)`."""
    with chromium() as browser, watch(browser, name, **kw) as w:
        yield w


# --------------------------------------------------------------------------- the lab server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the stdlib's signature)
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A page closed while MathJax's files were still coming: not the page's fault.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serve(directory: Path):
    """Serve a built folder (the website, the slide decks) over http on 127.0.0.1, on a free
    port, in a thread; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


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


@dataclass
class Lab:
    proc: subprocess.Popen
    port: int
    token: str
    log: Path

    def url(self, path: str = "/lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}{path}{sep}token={self.token}"

    def api(self, path, method="GET", body=None, timeout=30):
        return api(self.port, self.token, path, method, body, timeout)


def stop_process_group(proc, timeout=20) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def start_lab(tmp_path: Path, env: dict | None = None, args=()):
    """`python3 tools/course.py lab --no-browser` on a free port with a random token, as a
    learner starts it, but with Jupyter's config, data and runtime dirs (user settings,
    workspaces, user kernelspecs) under tmp_path. `env` entries are added to (a value None:
    removed from) the environment. Yields a Lab once /api/status answers."""
    port, token = free_port(), secrets.token_hex(16)
    full_env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
    }
    full_env.pop("JUPYTER_PATH", None)  # as in a learner's shell: only the lab command sets it
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    log_path = tmp_path / "lab.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "tools" / "course.py"),
                "lab",
                "--no-browser",
                "--port",
                str(port),
                f"--IdentityProvider.token={token}",
                *args,
            ],
            env=full_env,
            cwd=tmp_path,  # the command must not depend on where it is started
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until_up(proc, port, token)
            yield Lab(proc=proc, port=port, token=token, log=log_path)
        finally:
            stop_process_group(proc)
