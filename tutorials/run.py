"""Run a notebook-style tutorial from a shell, the way Jupyter runs its cells:
``python tutorials/run.py tutorials/01_first_program/tutorial.py``.

The tutorials are Jupyter cells (``# %%``) that use top-level ``await`` (``await smc_async(...)``),
which Jupyter runs inside its own event loop. This runs the file the same way: inside a running
event loop, with top-level ``await`` allowed, as the module ``__main__``.
"""

from __future__ import annotations

import ast
import asyncio
import sys
import types
from pathlib import Path


async def run_notebook_script(path: Path) -> None:
    code = compile(path.read_text(), str(path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    module = types.ModuleType("__main__")
    module.__file__ = str(path)
    sys.modules["__main__"] = module
    result = eval(code, module.__dict__)
    if asyncio.iscoroutine(result):
        await result


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_file():
        sys.exit("usage: python tutorials/run.py tutorials/NN_name/tutorial.py")
    asyncio.run(run_notebook_script(Path(sys.argv[1])))
