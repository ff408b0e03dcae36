"""course_lib: the tested helpers that the course's notebooks import.

One module per concept, imported explicitly (``from course_lib import device``). This file
imports no submodule, so ``import course_lib`` is instant and pulls in nothing but itself.
"""

__version__ = "0.1.0"

# torchao (PyTorch's int8 path, notebook 13) logs at import, with the absolute paths of its
# files, that its CUDA kernels do not load on a CPU, and torch warns about one of its types;
# Hugging Face transformers imports torchao whenever it is installed. Errors still show.
import logging as _logging  # noqa: E402

for _name in ("torchao", "torch.utils._pytree"):
    _logging.getLogger(_name).setLevel(_logging.ERROR)
