"""Static validation of planner-written programs, before any of their code runs.

`validate_program(source)` parses the completion and accepts it only if it is one inference
program built from an allow-list:

- Module level holds only imports, constants, helper functions and exactly one class, deriving
  from ``TextModel`` (or a library base such as ``LibraryProgram``), with ``__init__(self, lm, task)`` that calls ``super().__init__``,
  ``async def step(self)`` and ``def check(self, output)``.
- Imports come from `allowed_imports()` (`selfsteer.planners.allowlist`); a module object is
  only ever used as ``module.name``.
- Every name is defined where it is read (bindings are resolved per scope, as Python does; an
  import alias is a binding like any other) or is one of `SAFE_BUILTINS`: no ``open``, ``eval``,
  ``exec``, ``getattr``, ``type``, ``globals``... No ``__dunder__`` names or attributes (except
  ``super().__init__``), no ``_private`` attributes of anything but ``self``, none of the
  introspection or I/O attributes in `DENIED_ATTRIBUTES` (the same rules hold for the attributes a
  ``match`` class pattern reads, ``case Cls(attr=...)``), and the LM only as ``lm.<one of
  LM_ATTRIBUTES>``. No ``global``/``nonlocal``, no bare ``except:``, no ``str.format`` on
  anything but a literal with plain fields.

Each rejection is a `ValidationError` whose message lists every problem found, with line numbers,
worded so the planner can fix it. These checks are the first line of defence; the sandbox
(`selfsteer.planners.sandbox`) is the boundary that contains whatever gets past them.
"""

from __future__ import annotations

import ast
import importlib
import string
import threading
from dataclasses import dataclass

from .allowlist import (
    ALLOWED_DECORATORS,
    ALLOWED_DUNDER_METHODS,
    DENIED_ATTRIBUTES,
    FORBIDDEN_BUILTINS,
    LIBRARY_PACKAGE,
    LM_ATTRIBUTES,
    SAFE_BUILTINS,
    allowed_imports,
)

MAX_SOURCE_CHARS = 60_000
PROGRAM_BASE = "TextModel"

MAX_PROBLEMS_REPORTED = 8


_AST_LOCK = threading.Lock()


def parse_python(source: str, mode: str = "exec") -> ast.AST:
    """``ast.parse`` under a process-wide lock: CPython 3.11's AST constructor keeps global
    recursion state and fails ("AST constructor recursion depth mismatch") when threads parse at
    once, and planners run in worker threads."""
    with _AST_LOCK:
        return ast.parse(source, mode=mode)


class ValidationError(ValueError):
    """A program was rejected before running; ``problems`` lists each reason (with its line)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = problems[:MAX_PROBLEMS_REPORTED]
        more = len(problems) - len(shown)
        text = "the program was rejected before running:\n" + "\n".join(f"- {p}" for p in shown)
        if more:
            text += f"\n- ... and {more} more problem(s)"
        super().__init__(text)


@dataclass(frozen=True)
class ValidatedProgram:
    """A program that passed validation: its source and the name of its program class."""

    source: str
    class_name: str


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _plain_format_fields(template: str) -> bool:
    """True if every ``{field}`` of a format string is empty, a number or a plain name."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return False
    for _, field_name, spec, _ in parsed:
        if field_name and not (field_name.isdigit() or field_name.isidentifier()):
            return False
        if spec and "{" in spec:
            return False
    return True


def _attribute_problem(attr: str, *, on_self: bool) -> str | None:
    """Why reading ``.attr`` is not allowed (None if it is): dunders, others' privates, introspection."""
    if _is_dunder(attr) or attr.startswith("__"):
        return f"the attribute `{attr}` is not allowed: no __dunder__ attributes (only `super().__init__`)"
    if attr.startswith("_") and not on_self:
        return f"the private attribute `.{attr}` is not allowed; only your own `self._name` attributes may start with `_`"
    if attr in DENIED_ATTRIBUTES:
        return f"the attribute `.{attr}` is not allowed (introspection, raw memory or file I/O)"
    return None


SCOPES = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
          ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
FUNCTION_SCOPES = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


class _Checker(ast.NodeVisitor):
    def __init__(self) -> None:
        self.problems: list[tuple[int, str]] = []
        self.parents: dict[ast.AST, ast.AST] = {}
        self.scopes: dict[ast.AST, dict[str, str]] = {}  # scope node -> {name: "module" | "value"}
        self.lm_names: set[str] = {"lm"}
        self.imported: dict[str, str] = {}  # alias -> module, for every `import module [as alias]`

    def add(self, node: ast.AST | None, message: str) -> None:
        line = getattr(node, "lineno", None)
        self.problems.append((line or 0, f"line {line}: {message}" if line else message))

    # ----- names (bound per scope, as Python resolves them) -----------------------------------
    def scope_of(self, node: ast.AST, kinds: tuple[type, ...] = SCOPES) -> ast.AST:
        """The nearest enclosing scope of ``node`` (not ``node`` itself)."""
        parent = self.parents.get(node)
        while parent is not None and not isinstance(parent, kinds):
            parent = self.parents.get(parent)
        return parent

    def collect_bindings(self, tree: ast.Module) -> None:
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                walrus = isinstance(self.parents.get(node), ast.NamedExpr)
                self.bind(node, node.id, self.scope_of(node, FUNCTION_SCOPES + (ast.ClassDef,) if walrus else SCOPES))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.bind(node, node.name, self.scope_of(node))
            elif isinstance(node, ast.arg):
                self.bind(node, node.arg, self.scope_of(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))
            elif isinstance(node, ast.ExceptHandler) and node.name:
                self.bind(node, node.name, self.scope_of(node))
            elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
                self.bind(node, node.name, self.scope_of(node))
            elif isinstance(node, ast.MatchMapping) and node.rest:
                self.bind(node, node.rest, self.scope_of(node))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if alias.name != "*":
                        kind = "module" if isinstance(node, ast.Import) else "value"
                        self.bind(node, alias.asname or alias.name.split(".")[0], self.scope_of(node), kind)

    def bind(self, node: ast.AST, name: str, scope: ast.AST, kind: str = "value") -> None:
        if _is_dunder(name) and not (isinstance(node, ast.FunctionDef) and name in ALLOWED_DUNDER_METHODS):
            self.add(node, f"the name `{name}` is not allowed: no __dunder__ names")
        elif name in FORBIDDEN_BUILTINS:
            self.add(node, f"do not rebind the builtin name `{name}`; choose another name")
        names = self.scopes.setdefault(scope, {})
        if names.get(name) != "module":  # bound as a module anywhere in a scope: treated as a module
            names[name] = kind

    def resolve(self, node: ast.Name) -> str | None:
        """How ``node``'s name is bound where it is read: "module", "value", or None (unbound)."""
        scope, nearest = self.scope_of(node), True
        while scope is not None:
            if not isinstance(scope, ast.ClassDef) or nearest:  # a class body is not visible to its methods
                kind = self.scopes.get(scope, {}).get(node.id)
                if kind is not None:
                    return kind
            scope, nearest = self.scope_of(scope), False
        return None

    def visit_Name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Load):
            return
        name, kind = node.id, self.resolve(node)
        if _is_dunder(name):
            self.add(node, f"the name `{name}` is not allowed: no __dunder__ names")
        elif kind == "module":
            parent = self.parents.get(node)
            if not (isinstance(parent, ast.Attribute) and parent.value is node):
                self.add(node, f"use the module `{name}` only as `{name}.<name>`; it cannot be stored or passed")
        elif kind is None and name in FORBIDDEN_BUILTINS:
            self.add(node, f"`{name}` is not available to programs (no file, process, eval or introspection builtins)")
        elif kind is None and name not in SAFE_BUILTINS:
            self.add(node, f"the name `{name}` is not defined; import it from an allowed module or define it")
        if name in self.lm_names:
            self.check_lm_use(node)

    def visit_MatchClass(self, node: ast.MatchClass) -> None:
        """``case Cls(attr=pattern)`` reads ``attr``: the same rules as ``obj.attr``."""
        for attr in node.kwd_attrs:
            problem = _attribute_problem(attr, on_self=False)
            if problem or attr == "lm":
                self.add(node, problem or "match patterns may not read the LM; use `self.lm.<name>`")
        self.generic_visit(node)

    # ----- attributes -------------------------------------------------------------------------
    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr, value = node.attr, node.value
        is_super_init = (
            attr == "__init__" and isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
            and value.func.id == "super"
        )
        problem = None if is_super_init else _attribute_problem(attr, on_self=isinstance(value, ast.Name) and value.id == "self")
        if problem:
            self.add(node, problem)
        module = self.module_of(value)
        if module is not None:
            if attr not in allowed_imports()[module]:
                self.add(node, f"`{value.id}.{attr}` is not allowed; from {module} use: {', '.join(sorted(allowed_imports()[module]))}")
        if attr == "lm":
            self.check_lm_use(node)
        if attr == "format" and not (isinstance(value, ast.Constant) and isinstance(value.value, str)
                                     and _plain_format_fields(value.value)):
            self.add(node, "`.format` is only allowed on a string literal with plain fields; use an f-string instead")
        self.generic_visit(node)

    def check_lm_use(self, node: ast.expr) -> None:
        """The LM may be read only as ``lm.<allowed>`` or passed to ``super().__init__``."""
        parent = self.parents.get(node)
        if isinstance(parent, ast.Attribute) and parent.value is node:
            if parent.attr not in LM_ATTRIBUTES:
                self.add(parent, f"`.{parent.attr}` of the LM is not available to programs; use one of: {', '.join(sorted(LM_ATTRIBUTES))}")
            return
        call = parent  # the LM may be an argument of super().__init__(...)
        if isinstance(call, ast.keyword):
            call = self.parents.get(call)
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "__init__":
            return
        if isinstance(parent, ast.Assign) and isinstance(node, ast.Attribute) and node in parent.targets:
            return  # `self.lm = ...` is a binding, not a use
        self.add(node, "use the LM only as `self.lm.<masks|vocab|encode|decode|...>` or pass it to `super().__init__`")

    # ----- imports ----------------------------------------------------------------------------
    def module_of(self, value: ast.expr) -> str | None:
        """The allowed module a bare name refers to where it is read (None if not a module)."""
        if not (isinstance(value, ast.Name) and self.resolve(value) == "module"):
            return None
        return self.imported.get(value.id)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name not in allowed_imports() or "." in alias.name:
                hint = " (write `from selfsteer.smc import TextModel`)" if alias.name.startswith("selfsteer") else ""
                self.add(node, f"importing `{alias.name}` is not allowed{hint}; allowed modules: {', '.join(sorted(allowed_imports()))}")
                continue
            name = alias.asname or alias.name
            if self.imported.setdefault(name, alias.name) != alias.name:
                self.add(node, f"`{name}` names two different modules; import each under its own name")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or module not in allowed_imports():
            self.add(node, f"importing from `{'.' * node.level}{module}` is not allowed; allowed modules: {', '.join(sorted(allowed_imports()))}")
            return
        for alias in node.names:
            if alias.name == "*":
                self.add(node, f"`from {module} import *` is not allowed; import the names you use")
            elif alias.name not in allowed_imports()[module]:
                self.add(node, f"`{alias.name}` cannot be imported from {module}; allowed: {', '.join(sorted(allowed_imports()[module]))}")

    # ----- statements -------------------------------------------------------------------------
    def visit_Global(self, node: ast.Global) -> None:
        self.add(node, "`global` is not allowed; keep state on `self`")

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.add(node, "`nonlocal` is not allowed; keep state on `self`")

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        caught = node.type
        names = [caught] if not isinstance(caught, ast.Tuple) else caught.elts
        if caught is None or any(isinstance(n, ast.Name) and n.id == "BaseException" for n in names):
            self.add(node, "a bare `except:` (or `except BaseException`) also swallows the engine's particle-death "
                           "signal; catch specific exceptions such as `except ValueError:`")
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for dec in node.decorator_list:
            if not (isinstance(dec, ast.Name) and dec.id in ALLOWED_DECORATORS):
                self.add(dec, f"decorators other than {', '.join(sorted(ALLOWED_DECORATORS))} are not allowed")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef


def _check_module_layout(tree: ast.Module, checker: _Checker) -> str | None:
    """Module level: imports, constants, functions and exactly one program class."""
    classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                             ast.Assign, ast.AnnAssign)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue  # a docstring
        checker.add(node, "only imports, constants, functions and the program class may appear at module level")
    if len(classes) != 1:
        names = ", ".join(c.name for c in classes) or "none"
        checker.add(None, f"define exactly one class (the program), deriving from TextModel; found {len(classes)}: {names}")
        return None
    cls = classes[0]
    if cls not in tree.body:
        checker.add(cls, "define the program class at module level")
    bases = [b.id if isinstance(b, ast.Name) else None for b in cls.bases]
    if len(bases) != 1 or bases[0] not in _program_bases(tree):
        checker.add(cls, f"the program class `{cls.name}` must derive from TextModel (or a library base such as LibraryProgram): `class {cls.name}(TextModel):`")
    if cls.keywords:
        checker.add(cls, "class keywords (metaclass=...) are not allowed")
    _check_methods(cls, checker)
    return cls.name


def _program_bases(tree: ast.Module) -> set[str]:
    """TextModel, and the names a program imports from the library that are TextModel subclasses."""
    from selfsteer.smc import TextModel

    bases = {PROGRAM_BASE}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith(LIBRARY_PACKAGE):
            allowed = allowed_imports().get(node.module, frozenset())
            for alias in node.names:
                value = getattr(importlib.import_module(node.module), alias.name, None) if alias.name in allowed else None
                if isinstance(value, type) and issubclass(value, TextModel):
                    bases.add(alias.asname or alias.name)
    return bases


def _check_methods(cls: ast.ClassDef, checker: _Checker) -> None:
    methods = {n.name: n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    step = methods.get("step")
    if step is None:
        checker.add(cls, f"`{cls.name}` has no step(); define `async def step(self):`")
    elif not isinstance(step, ast.AsyncFunctionDef):
        checker.add(step, "step must be a coroutine: write `async def step(self):`, not `def step(self):`")
    check = methods.get("check")
    if check is None:
        checker.add(cls, f"`{cls.name}` has no check(); define `def check(self, output) -> bool:` to verify a finished output")
    elif isinstance(check, ast.AsyncFunctionDef):
        checker.add(check, "check must be a plain function: write `def check(self, output):`, not `async def`")
    init = methods.get("__init__")
    if init is None:
        checker.add(cls, f"`{cls.name}` has no constructor; define `def __init__(self, lm, task):` that calls super().__init__(lm, ...)")
        return
    args = init.args
    names = [a.arg for a in args.posonlyargs + args.args]
    if names != ["self", "lm", "task"] or args.vararg or args.kwarg or args.kwonlyargs or args.defaults:
        checker.add(init, "the constructor must be exactly `def __init__(self, lm, task):` (write constants inline)")
    calls_super = any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "__init__"
        and isinstance(n.func.value, ast.Call) and isinstance(n.func.value.func, ast.Name) and n.func.value.func.id == "super"
        for n in ast.walk(init)
    )
    if not calls_super:
        checker.add(init, "the constructor must call `super().__init__(lm, prior, proposal, max_tokens=...)`")


def validate_program(source: str) -> ValidatedProgram:
    """Accept ``source`` as one planner-written program or raise `ValidationError` (see the module docstring)."""
    if not isinstance(source, str) or not source.strip():
        raise ValidationError(["the completion holds no program: write one ```python block defining the program class"])
    if len(source) > MAX_SOURCE_CHARS:
        raise ValidationError([f"the program is {len(source)} characters long; keep it under {MAX_SOURCE_CHARS}"])
    try:
        tree = parse_python(source)
    except SyntaxError as e:
        raise ValidationError([f"line {e.lineno}: syntax error: {e.msg}"]) from None
    except (ValueError, RecursionError, MemoryError) as e:
        raise ValidationError([f"the program could not be parsed ({type(e).__name__}: {e}); simplify it"]) from None
    checker = _Checker()
    checker.collect_bindings(tree)
    class_name = _check_module_layout(tree, checker)
    checker.visit(tree)
    if checker.problems or class_name is None:
        raise ValidationError([text for _, text in sorted(checker.problems, key=lambda p: p[0])])
    return ValidatedProgram(source, class_name)
