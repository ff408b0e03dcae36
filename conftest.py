"""Repo-wide pytest set-up: the environment nbval's kernels inherit.

The kernels that nbval starts inherit os.environ, so pinning it here (pin_kernel_env: KERNEL_ENV
set, the course's other switches and thread, plotting and warning variables overridden or
removed) gives them exactly the environment in which `python3 tools/course.py execute` produced
the stored outputs, whatever the caller's shell exports. The unit tests run in it too.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "tools"))

from notebooks import pin_kernel_env  # noqa: E402

pin_kernel_env()


def pytest_collection_modifyitems(items):
    # nbval waits a hard-coded 5 s for each output message after a cell's reply; on a busy
    # 2-core CI machine that is too short. The attribute is per item, so raise it here.
    for item in items:
        if type(item).__name__ == "IPyNbCell":
            item.output_timeout = 60
