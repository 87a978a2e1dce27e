"""What planner-written programs may use: modules, names, builtins and attributes.

These lists are the single source for the validator (`selfsteer.planners.validate`), the
sandbox's import guard and restricted builtins (`selfsteer.planners.sandbox_child`) and the
rules section of the planner prompt (`selfsteer.planners.prompt`).

`allowed_imports()` is a static list of safe standard-library names and selfsteer's program API,
plus the helpers of the program library (`selfsteer.programs`): the functions and classes its
modules define, but none of its finished programs (classes carrying a ``SPEC``), so a planner can
build on the library without copying a solution.
"""

from __future__ import annotations

import builtins
import importlib
import pkgutil
import re
from functools import cache

STATIC_IMPORTS: dict[str, frozenset[str]] = {
    "selfsteer.smc": frozenset({
        "TextModel", "Bernoulli", "Categorical", "Geometric", "Token", "Chunk", "TokenMask",
        "Regex", "Grammar", "JsonSchema",
    }),
    "re": frozenset({
        "compile", "match", "search", "fullmatch", "findall", "finditer", "sub", "subn", "split",
        "escape", "IGNORECASE", "I", "MULTILINE", "M", "DOTALL", "S", "VERBOSE", "X", "ASCII", "A",
        "Pattern", "Match", "error",
    }),
    "math": frozenset({
        "ceil", "floor", "trunc", "sqrt", "exp", "log", "log2", "log10", "log1p", "expm1", "fsum",
        "prod", "isclose", "isfinite", "isinf", "isnan", "inf", "nan", "pi", "e", "comb", "perm",
        "factorial", "gcd", "lcm", "fabs", "copysign", "pow", "isqrt",
    }),
    "string": frozenset({
        "ascii_letters", "ascii_lowercase", "ascii_uppercase", "digits", "hexdigits", "octdigits",
        "punctuation", "printable", "whitespace", "capwords",
    }),
    "itertools": frozenset({
        "accumulate", "chain", "combinations", "compress", "count", "cycle", "dropwhile",
        "filterfalse", "groupby", "islice", "pairwise", "permutations", "product", "repeat",
        "starmap", "takewhile", "zip_longest",
    }),
    "collections": frozenset({"Counter", "defaultdict", "deque", "OrderedDict"}),
    "asyncio": frozenset({"sleep"}),
}
LIBRARY_PACKAGE = "selfsteer.programs"
LIBRARY_EXCLUDED = frozenset({"registry", "examples", "tasks"})  # tasks: the evaluation's own checker
PLAIN_CONSTANT_TYPES = (str, int, float, bool, tuple, frozenset, re.Pattern)


def _library_modules() -> list[str]:
    """The modules of the program library (the registry and examples left out)."""
    try:
        package = importlib.import_module(LIBRARY_PACKAGE)
    except ImportError:
        return []
    names = [m.name for m in pkgutil.iter_modules(package.__path__) if not m.ispkg]
    return [f"{LIBRARY_PACKAGE}.{n}" for n in names if n not in LIBRARY_EXCLUDED and not n.startswith("_")]


def _public_names(module_name: str) -> frozenset[str]:
    """What a program may import from a library module: the functions and classes the module
    defines itself (but not its finished programs, those carrying a ``SPEC``) and its plain constants."""
    module = importlib.import_module(module_name)
    keep = set()
    for name, value in vars(module).items():
        if name.startswith("_") or (isinstance(value, type) and "SPEC" in vars(value)):
            continue
        own = getattr(value, "__module__", "") or ""
        if (callable(value) and own == module_name) or isinstance(value, PLAIN_CONSTANT_TYPES):
            keep.add(name)
    return frozenset(keep)


@cache
def allowed_imports() -> dict[str, frozenset[str]]:
    """Every module a program may import from, with the names it may use (computed once)."""
    allowed = dict(STATIC_IMPORTS)
    for module in _library_modules():
        allowed[module] = _public_names(module)
    return allowed

SAFE_BUILTINS = frozenset({
    "abs", "all", "any", "ascii", "bin", "bool", "bytes", "callable", "chr", "dict", "divmod",
    "enumerate", "filter", "float", "format", "frozenset", "hash", "hex", "int", "isinstance",
    "issubclass", "iter", "len", "list", "map", "max", "min", "next", "oct", "ord", "pow", "print",
    "range", "repr", "reversed", "round", "set", "slice", "sorted", "str", "sum", "tuple", "zip",
    "super", "property", "staticmethod", "NotImplemented", "Ellipsis",
    "Exception", "ArithmeticError", "AssertionError", "AttributeError", "IndexError", "KeyError",
    "LookupError", "NotImplementedError", "RuntimeError", "StopIteration", "TypeError",
    "ValueError", "ZeroDivisionError",
})
FORBIDDEN_BUILTINS = frozenset(n for n in dir(builtins) if not n.startswith("_")) - SAFE_BUILTINS

LM_ATTRIBUTES = frozenset({"masks", "vocab", "encode", "decode", "name", "has_chat_template"})
DENIED_ATTRIBUTES = frozenset({
    # frames, code objects and tracebacks: the classic ways out of a restricted namespace
    "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame", "ag_code",
    "ag_await", "f_globals", "f_locals", "f_builtins", "f_back", "f_code", "f_trace", "tb_frame",
    "tb_next", "co_code", "co_consts", "co_names", "mro", "format_map",
    # raw memory and foreign functions (numpy bit generators and arrays expose these)
    "ctypes", "cffi", "bit_generator",
    # file and model I/O on objects a program can reach
    "save_pretrained", "from_pretrained", "push_to_hub", "to_json_file", "save_vocabulary",
    "load_state_dict", "tofile", "fromfile", "dump", "load", "save",
})
ALLOWED_DECORATORS = frozenset({"property", "staticmethod"})
ALLOWED_DUNDER_METHODS = frozenset({"__init__"})
