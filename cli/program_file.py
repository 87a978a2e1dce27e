"""Loading a user's program file for ``selfsteer run``, with every fault reported as a `UsageError`
that names the file, the line and the fix, before any model loads.

A program file defines a `Model` subclass and either a ``make_model(lm, ...)`` function (called
with the loaded follower LM, plus ``task=`` from ``--task`` and one keyword per ``--param``) or a
module-level ``model`` instance.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from .arguments import UsageError


def where(error: BaseException, path: Path) -> str:
    """``" (prog.py, line 12)"`` for the innermost frame of ``error`` in ``path``, else ``""``."""
    if isinstance(error, SyntaxError) and error.lineno:
        return f" ({path.name}, line {error.lineno})"
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename).resolve() == path.resolve()]
    return f" ({path.name}, line {frames[-1].lineno})" if frames else ""


def load_module(path: Path) -> ModuleType:
    """Execute the program file; errors name the line."""
    if not path.is_file():
        raise UsageError(f"no program file at {path}; pass the path of a .py file")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise UsageError(f"{path} has a syntax error{where(e, path)}: {e.msg}") from None
    except Exception as e:
        raise UsageError(f"{path} raised {type(e).__name__} while loading{where(e, path)}: {e}") from None
    if not hasattr(module, "make_model") and not hasattr(module, "model"):
        raise UsageError(f"{path} defines neither make_model(lm) nor a `model` instance; add "
                         "`def make_model(lm): return MyProgram(lm, ...)`")
    check_step_methods(module, path)
    return module


def check_step_methods(module: ModuleType, path: Path) -> None:
    """Every `Model` subclass the file defines has ``async def step``."""
    from selfsteer.smc import Model

    for name, cls in vars(module).items():
        if not (inspect.isclass(cls) and issubclass(cls, Model) and cls.__module__ == module.__name__):
            continue
        step = cls.__dict__.get("step")
        if step is not None and not inspect.iscoroutinefunction(step):
            line = inspect.getsourcelines(step)[1]
            raise UsageError(f"{name}.step ({path.name}, line {line}) must be a coroutine: "
                             "write `async def step(self)`, not `def step(self)`")


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["k=v", ...]`` as keyword arguments; a value is read as JSON when it parses, else as text."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, eq, text = pair.partition("=")
        if not eq or not key.isidentifier():
            raise UsageError(f"--param {pair!r}: write KEY=VALUE with KEY a Python name, e.g. --param letter=e")
        try:
            params[key] = json.loads(text)
        except ValueError:
            params[key] = text
    return params


def model_arguments(module: ModuleType, path: Path, task: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments for ``make_model``, checked against its signature."""
    kwargs = ({"task": task} if task is not None else {}) | params
    if not hasattr(module, "make_model"):
        if kwargs:
            raise UsageError(f"{path} defines a `model` instance, which takes no --task or --param; "
                             "define make_model(lm, task=..., ...) instead")
        return {}
    try:
        inspect.signature(module.make_model).bind(None, **kwargs)
    except TypeError as e:
        raise UsageError(f"make_model in {path} does not accept these options ({e}); "
                         f"its signature is make_model{inspect.signature(module.make_model)}") from None
    return kwargs


def build_model(module: ModuleType, path: Path, lm: Any, kwargs: dict[str, Any]):
    """The program: ``make_model(lm, **kwargs)`` or the module's ``model``; errors name the line."""
    from selfsteer.smc.inference import validate_model

    if hasattr(module, "make_model"):
        try:
            model = module.make_model(lm, **kwargs)
        except Exception as e:
            raise UsageError(f"make_model raised {type(e).__name__}{where(e, path)}: {e}") from None
    else:
        model = module.model
    try:
        validate_model(model)
    except TypeError as e:
        raise UsageError(f"{path}: {e}") from None
    return model
