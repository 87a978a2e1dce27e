"""Few-shot examples for the planner prompt, made from the hand-written program library.

A library program is built as ``cls(lm, task, **params)`` and may use helpers from its module.
The planner writes programs built as ``cls(lm, task)``, so `as_planner_program` rewrites a
library class into that form: the module's imports and helpers that the class uses, the class
without its ``SPEC``, and ``__init__(self, lm, task)`` with the example's parameters inlined as
constants. Every example is therefore a program the validator accepts, in exactly the form the
planner must produce.

`pick_examples` chooses the examples for a task: programs from families other than the task's
own (leave-one-family-out), ranked by the best word overlap (Jaccard) between the task and each
program's description or example tasks.
"""

from __future__ import annotations

import ast
import copy
import inspect
import re
import sys
from dataclasses import dataclass
from typing import Any

from .allowlist import allowed_imports

LIBRARY_PACKAGE = "selfsteer.programs"
WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Example:
    """One few-shot example: a task, its program's family and name, and the program's source."""

    task: str
    family: str
    program: str
    source: str


def library_programs() -> list[type]:
    """The library's program classes (empty when the library is not installed)."""
    try:
        from selfsteer.programs.registry import all_programs
    except ImportError:
        return []
    return all_programs()


def _bound_names(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return {n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)}


def _used_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _absolute(node: ast.ImportFrom, package: str) -> ast.ImportFrom:
    if not node.level:
        return node
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - node.level + 1])
    return ast.ImportFrom(module=f"{base}.{node.module}" if node.module else base, names=node.names, level=0)


def _inline_params(init: ast.FunctionDef, params: dict[str, Any]) -> ast.FunctionDef:
    """``__init__(self, lm, task, *, a, b=2)`` -> ``__init__(self, lm, task)`` with ``a = ...; b = ...`` first."""
    args = init.args
    assigns = []
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if arg.arg in params:
            value: ast.expr = ast.Constant(None) if params[arg.arg] is None else ast.parse(repr(params[arg.arg]), mode="eval").body
        elif default is not None:
            value = default
        else:
            raise ValueError(f"the example gives no value for the required parameter {arg.arg!r}")
        assigns.append(ast.Assign(targets=[ast.Name(arg.arg, ast.Store())], value=value, lineno=0))
    new = copy.deepcopy(init)
    new.args = ast.arguments(posonlyargs=[], args=[ast.arg("self"), ast.arg("lm"), ast.arg("task")], kwonlyargs=[],
                             kw_defaults=[], defaults=[], vararg=None, kwarg=None)
    new.returns = None
    has_doc = new.body and isinstance(new.body[0], ast.Expr) and isinstance(getattr(new.body[0], "value", None), ast.Constant)
    new.body = new.body[:1] + assigns + new.body[1:] if has_doc else assigns + new.body
    return new


def as_planner_program(cls: type, params: dict[str, Any]) -> str:
    """The source of library program ``cls`` rewritten as a planner program with ``params`` inlined."""
    module = sys.modules[cls.__module__]
    tree = _strip_annotations(ast.parse(inspect.getsource(module)))
    top = {}
    for node in tree.body:
        for name in _bound_names(node):
            top.setdefault(name, node)
    cls_node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    body = []
    for item in cls_node.body:
        if isinstance(item, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "SPEC" for t in item.targets):
            continue
        if isinstance(item, ast.FunctionDef) and item.name == "__init__":
            item = _inline_params(item, params)
        body.append(item)
    if not any(isinstance(i, ast.FunctionDef) and i.name == "__init__" for i in body):
        init = ast.parse("def __init__(self, lm, task):\n    super().__init__(lm, task)").body[0]
        docstring_first = body and isinstance(body[0], ast.Expr)
        body.insert(1 if docstring_first else 0, init)
    new_cls = copy.deepcopy(cls_node)
    new_cls.body = body
    # the module-level definitions the class needs, transitively, in module order
    importable = allowed_imports().get(cls.__module__, frozenset())
    needed, queue = set(), _used_names(new_cls)
    while queue:
        name = queue.pop()
        node = top.get(name)
        if node is None or name in needed or node is cls_node:
            continue
        needed.add(name)
        if not isinstance(node, (ast.Import, ast.ImportFrom)) and name not in importable:
            queue |= _used_names(node)  # copied definitions bring what they use; imported ones do not
    own_imports = sorted(n for n in needed if n in importable and not isinstance(top[n], (ast.Import, ast.ImportFrom)))
    out: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a for a in node.names if (a.asname or a.name).split(".")[0] in needed]
            if names:
                trimmed = copy.copy(node)
                trimmed.names = names
                out.append(_absolute(trimmed, module.__package__ or LIBRARY_PACKAGE) if isinstance(node, ast.ImportFrom) else trimmed)
        elif node is not cls_node and _bound_names(node) & needed and not _bound_names(node) & set(own_imports):
            out.append(node)
    if own_imports:  # the module's own helpers (a shared base class, say) are imported, not copied
        out.append(ast.ImportFrom(module=cls.__module__, names=[ast.alias(n) for n in own_imports], level=0))
    out.append(new_cls)
    return ast.unparse(ast.fix_missing_locations(ast.Module(body=out, type_ignores=[]))) + "\n"


def _strip_annotations(tree: ast.Module) -> ast.Module:
    """Drop type hints (they would need imports the planner does not get, and teach nothing)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.returns = None
            for arg in node.args.posonlyargs + node.args.args + node.args.kwonlyargs:
                arg.annotation = None
        for field_name in ("body", "orelse", "finalbody"):
            block = getattr(node, field_name, None)
            if isinstance(block, list):
                for i, stmt in enumerate(block):
                    if isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                        block[i] = ast.Assign(targets=[stmt.target], value=stmt.value, lineno=stmt.lineno)
    return tree


def _words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def pick_examples(task: str, *, exclude_family: str | None = None, k: int = 3) -> list[Example]:
    """Up to ``k`` examples from families other than ``exclude_family``, most similar to ``task`` first."""
    task_words = _words(task)
    scored = []
    for cls in library_programs():
        spec = cls.SPEC
        if spec.family == exclude_family or not spec.examples:
            continue
        texts = [_words(t) for t in (spec.description, *(t for t, _ in spec.examples))]
        similarity = max(len(task_words & w) / max(len(task_words | w), 1) for w in texts)  # best Jaccard
        scored.append((similarity, spec.name, cls))
    scored.sort(key=lambda s: (-s[0], s[1]))
    examples, families = [], set()
    for _, _, cls in scored:  # prefer variety: one program per family first, then the rest
        if cls.SPEC.family not in families:
            families.add(cls.SPEC.family)
            examples.append(cls)
    examples += [cls for _, _, cls in scored if cls not in examples]
    out = []
    for cls in examples[:k]:
        example_task, params = cls.SPEC.examples[0]
        out.append(Example(example_task, cls.SPEC.family, cls.SPEC.name, as_planner_program(cls, params)))
    return out
