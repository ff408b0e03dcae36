"""The open-the-course command works in a real browser: notebook 00 runs in the course's kernel.

Starts `tools/course.py lab` (tests/browser.py: start_lab), opens notebooks/00 in headless Debian
Chromium (Playwright), clears the stored outputs and runs the first code cells through the UI
(Edit menu, then Shift+Enter), as a learner does. Fails when the kernel is not the course's
kernelspec, a cell shows an error, the browser console logs an error, a request leaves
localhost, or JupyterLab asks "Would you like to get notified about official Jupyter news?"
(turned off by tools/jupyter/settings/overrides.json, which the lab command reads).
Screenshot: build/browser/lab_notebook_00.png. Skips without chromium or playwright (see
tests/browser.py), fails instead under COURSE_REQUIRE_BROWSER=1.
"""

import json
from pathlib import Path

import course
import pytest
from browser import open_page, require_browser, start_lab

pytestmark = pytest.mark.browser  # .ci/run times the browser checks as a step of their own

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "00_setup_and_doctor.ipynb"
NEWS = "Would you like to get notified about official Jupyter news?"
RUN_CELLS = 9  # cells 0-8: markdown, the notebook card, versions, the device plan (6 code cells)

# The notebook panel JupyterLab shows (the lab runs with --LabApp.expose_app_in_browser=True).
PANEL = "window.jupyterapp.shell.currentWidget"
KERNEL_READY = f"""() => {{
    const p = window.jupyterapp && {PANEL};
    return !!(p && p.sessionContext && p.sessionContext.session
              && p.sessionContext.session.kernel
              && p.sessionContext.kernelDisplayStatus === 'idle');
}}"""
CELLS = f"""(n) => {PANEL}.content.widgets.slice(0, n).map(c => ({{
    type: c.model.type,
    count: c.model.type === 'code' ? c.model.executionCount : null,
    outputs: c.model.type === 'code' ? c.model.outputs.toJSON() : [],
}}))"""
KERNEL = f"""() => {{
    const s = {PANEL}.sessionContext;
    return {{name: s.session.kernel.name, display: s.kernelDisplayName}};
}}"""


def course_kernelspec() -> dict:
    """The kernelspec `tools/course.py setup` writes (course.write_kernelspec)."""
    path = Path(course.kernels_dir()) / "kernels" / "python3" / "kernel.json"
    return {"name": path.parent.name, **json.loads(path.read_text())}


def done(cells) -> bool:
    return all(c["type"] != "code" or c["count"] is not None for c in cells)


def test_notebook_00_runs_in_the_course_kernel_in_a_browser(tmp_path):
    require_browser()  # skip before starting a server
    spec = course_kernelspec()
    notebook = REPO / "notebooks" / NOTEBOOK
    stored = notebook.read_bytes()
    # The user settings of this throw-away config dir: no autosave, so that running cells
    # (which marks the notebook changed) never writes to notebooks/.
    docmanager = tmp_path / "config" / "lab" / "user-settings" / "@jupyterlab"
    docmanager /= "docmanager-extension"
    docmanager.mkdir(parents=True)
    (docmanager / "plugin.jupyterlab-settings").write_text('{"autosave": false}')

    lab_args = [
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: the notebook's model
        # Opening a notebook makes JupyterLab store a checkpoint: in tmp_path, not notebooks/.
        f"--FileCheckpoints.root_dir={tmp_path / 'checkpoints'}",
    ]
    with (
        start_lab(tmp_path, args=lab_args) as lab,
        open_page("lab_notebook_00", height=1000, timeout_s=90) as w,
    ):
        # The lab command's settings overrides are what the server hands JupyterLab.
        notification = lab.api("/lab/api/settings/@jupyterlab/apputils-extension:notification")
        assert notification["schema"]["properties"]["fetchNews"]["default"] == "false"
        assert notification["schema"]["properties"]["checkForUpdates"]["default"] is False

        page = w.page
        page.goto(lab.url(f"/lab/tree/{NOTEBOOK}"))
        page.wait_for_function(KERNEL_READY, timeout=90_000)
        kernel = page.evaluate(KERNEL)
        assert kernel == {"name": spec["name"], "display": spec["display_name"]}, (
            f"the notebook runs in {kernel}, not the course's kernelspec {spec}"
        )
        toolbar = page.locator(".jp-NotebookPanel-toolbar .jp-Toolbar-kernelName")
        assert toolbar.inner_text().strip() == spec["display_name"]
        sessions = lab.api("/api/sessions")
        assert [s["kernel"]["name"] for s in sessions] == [spec["name"]]

        # Clear the stored outputs through the menu, so that every output seen below is new.
        page.get_by_role("menuitem", name="Edit", exact=True).click()
        page.get_by_role("menuitem", name="Clear Outputs of All Cells").click()
        assert not any(c["outputs"] for c in page.evaluate(CELLS, RUN_CELLS))

        # Select the first cell (command mode) and run cell after cell with Shift+Enter.
        page.locator(".jp-Notebook .jp-Cell").first.locator(".jp-InputPrompt").click()
        for _ in range(RUN_CELLS):
            page.keyboard.press("Shift+Enter")
        page.wait_for_function(
            f"(n) => ({CELLS})(n).every(c => c.type !== 'code' || c.count !== null)",
            arg=RUN_CELLS,
            timeout=90_000,
        )
        page.wait_for_function(KERNEL_READY, timeout=30_000)
        cells = page.evaluate(CELLS, RUN_CELLS)
        code = [c for c in cells if c["type"] == "code"]
        assert len(code) >= 5 and done(cells), cells
        errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
        assert not errors, "cells failed:\n" + "\n".join(
            f"{o['ename']}: {o['evalue']}" for o in errors
        )
        printed = "".join(
            "".join(o.get("text", ""))
            for c in code
            for o in c["outputs"]
            if o.get("name") == "stdout"
        )
        assert "Notebook 00" in printed and "course_lib" in printed, printed
        # What the learner sees: fresh prompts, printed outputs, no traceback.
        page.get_by_text("Notebook 00: Setup and doctor").first.wait_for()
        assert "Traceback" not in page.locator(".jp-Notebook").inner_text()

        # The page has settled (the app restored long ago, the kernel is idle): no news pop-up.
        page.evaluate("() => window.jupyterapp.restored.then(() => true)")
        assert page.get_by_text(NEWS).count() == 0, "JupyterLab asks about Jupyter news"
        assert page.locator(".Toastify__toast").count() == 0
        page.locator(".jp-Notebook .jp-CodeCell").first.scroll_into_view_if_needed()
        w.screenshot("lab_notebook_00")
        w.assert_clean()
    assert notebook.read_bytes() == stored, "the browser session changed the notebook on disk"
