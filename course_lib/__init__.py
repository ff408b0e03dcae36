"""course_lib: the tested helpers that the course's notebooks import.

One module per concept, imported explicitly (``from course_lib import device``). This file
imports no submodule, so ``import course_lib`` is instant and pulls in nothing but itself.
"""

__version__ = "0.1.0"
