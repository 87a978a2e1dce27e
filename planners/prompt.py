"""The planner prompt, generated at run time from the live code so it never drifts from it.

`build_messages(task, ...)` returns chat messages:

1. **system**: what an inference program is, then the API reference made by `api_reference`
   from the docstrings and signatures of `TextModel`, the `Model` primitives, tokens, chunks,
   masks, distributions and the library helpers, then the rules made from the validator's
   allow-lists (`selfsteer.planners.validate`) and the output contract;
2. **few-shot** pairs (user task, assistant program) from `selfsteer.planners.examples`, leaving
   out the task's own family;
3. **the task** (user), with a reminder of the answer format;
4. on a retry, the previous completion (assistant) and the error it ran into (user).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
from collections.abc import Sequence

from selfsteer.smc import (
    Bernoulli,
    Categorical,
    Chunk,
    ConstrainedSpan,
    Geometric,
    Grammar,
    JsonSchema,
    Model,
    Regex,
    TextModel,
    Token,
)
from selfsteer.smc import model as model_module
from selfsteer.smc import text_model as text_model_module
from selfsteer.smc.lm.vocab import TokenMask, TokenMasks

from .allowlist import LM_ATTRIBUTES, SAFE_BUILTINS, allowed_imports
from .examples import Example, pick_examples
from .validate import parse_python

TEXT_HELPERS = ("next_token", "next_word", "extend", "extend_with", "end", "hint")
PRIMITIVES = ("sample", "observe", "condition", "score", "twist", "finish", "check")
MASK_METHODS = ("containing", "without", "length", "where")
LIBRARY_PACKAGE = "selfsteer.programs"
UNDOCUMENTED_CONSTANTS = frozenset({"FAMILY"})  # bookkeeping, no use to a program
LIBRARY_FIRST = ("selfsteer.programs.base", "selfsteer.programs.tokens", "selfsteer.programs.text")

INTRO = """\
You write inference programs for selfsteer, a probabilistic programming framework. A program is a
Python class whose `async def step(self)` does one unit of work for one particle; a sequential
Monte Carlo (SMC) engine runs many particles at once on a small follower LM, reweights them with
every sample/observe/condition and resamples, so the surviving outputs satisfy the task's
constraints while staying fluent under the follower's prior. Your program must make the
constraints hold during generation (with masks, forced text and conditions) and verify the
finished output in `check`.
"""

CONSTRAINT_DIALECTS = """\
Regex syntax (what `Regex` accepts): Python `re` syntax for literals, `.` (any printable ASCII
character but newline), classes such as `[a-z]` and `[^x]`, `\\d` `\\w` `\\s`, groups `(...)` and
`(?:...)`, alternation `|`, quantifiers `?` `*` `+` `{m}` `{m,}` `{m,n}`, and the flag `(?i)` at the
start. A Regex always matches the whole span, so anchors are not needed: `^`, `$`, `\\b` and
backreferences such as `\\1` are rejected (ValueError); do not use lookarounds.

JSON-schema keywords (what `JsonSchema` enforces): the finished document is validated against
every JSON Schema draft-7 keyword (type, properties, required, additionalProperties, items, enum,
const, anyOf, oneOf, allOf, not, $ref, minimum, maximum, exclusiveMinimum, exclusiveMaximum,
multipleOf, minLength, maxLength, pattern, format, minItems, maxItems, uniqueItems,
minProperties, maxProperties); a particle whose document breaks one dies when it ends. Only the
structure steers token by token (type, properties, required, additionalProperties, items, enum,
const, anyOf); numeric bounds, lengths, patterns and item counts are checked only at the end, so
when they are tight write a `Regex` that states them (`schema_regex` writes one for simple
schemas) or `condition` on each value as soon as it is complete.
"""

GUIDANCE = """\
## Choosing the prior, defaults and conflicts
- The prior is the follower asked for the task's content with the constraint phrasing removed:
  for "Write a sentence about dogs without the letter e" it is "Write a sentence about dogs."
  (a TextModel's `prior` argument; a LibraryProgram's class attribute `PRIOR`). Keep the topic,
  genre and audience; drop counts, letters, lengths and formats, which the program enforces. The
  proposal gets the whole task (LibraryProgram passes it for you).
- Defaults where the task is silent: a sentence has 8 to 20 words, a paragraph 3 to 5 sentences,
  a list 3 to 5 items, a word at most 12 letters; set max_tokens to about twice the tokens the
  longest acceptable output needs (a word is about 1.5 tokens).
- Conflicting constraints (a required word that contains a banned letter, more required words
  than the word count allows): keep the hard, checkable constraints (counts, letters, required
  words, format) over soft ones (topic, style); when hard constraints contradict each other, write
  the program for the closest reading that can be satisfied and say so in the class docstring.
  `check` must test exactly what the program enforces: a check nothing can pass kills every particle.
- Cost: a step runs one batched LM call for all particles and runs have a time limit. Write free
  text a word or a chunk per step (`extend`, `chunk_within`, `next_word`) and use token masks
  only where the constraint needs them; a paragraph token by token takes hundreds of steps.
"""

OUTPUT_CONTRACT = """\
## Your answer
Answer with exactly one ```python code block and nothing else of substance. It defines exactly one
class deriving from TextModel (or LibraryProgram), built as `ProgramClass(lm, task)`:
- `def __init__(self, lm, task):` calls `super().__init__(lm, prior, task, max_tokens=...)` for a
  TextModel (prior: the task without its constraints, see above) or
  `super().__init__(lm, task, max_tokens=...)` for a LibraryProgram (set `PRIOR` on the class);
  write every constant of the task (numbers, words, letters) inline as a literal.
- Its class docstring states Strategy, Step granularity and End conditions.
- `async def step(self):` makes progress on every call and finishes the particle
  (`self.finish(text)` or `await self.end()`) within a bounded number of steps.
- `def check(self, output) -> bool:` verifies a finished output against the whole task.
"""


class _Annotation:
    """Prints a string annotation without quotes."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _signature(fn, name: str) -> str:
    prefix = "async def" if inspect.iscoroutinefunction(fn) else "def"
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return f"{prefix} {name}(...)"
    unquote = lambda a: _Annotation(a) if isinstance(a, str) else a  # noqa: E731
    sig = sig.replace(
        parameters=[p.replace(annotation=unquote(p.annotation)) for p in sig.parameters.values()],
        return_annotation=unquote(sig.return_annotation),
    )
    return f"{prefix} {name}{sig}"


def _member_doc(owner: type, name: str) -> str:
    member = inspect.getattr_static(owner, name)
    if isinstance(member, property):  # undocumented properties are covered by the module docstring
        return f"property {name}: {inspect.getdoc(member)}" if inspect.getdoc(member) else ""
    fn = getattr(owner, name)
    doc = inspect.getdoc(fn) or ""
    return f"{_signature(fn, name)}\n    " + doc.replace("\n", "\n    ")


def _fields(cls: type) -> str:
    fields = ", ".join(f"{f.name}: {f.type}" for f in dataclasses.fields(cls))
    return f"{cls.__name__}({fields}): {inspect.getdoc(cls)}"


def _doc(value) -> str:
    return (inspect.getdoc(value) or "").replace("\n", "\n    ")


def _class_doc(cls: type) -> str:
    """A class: its docstring, then each public method or property it defines itself."""
    bases = ", ".join(b.__name__ for b in cls.__bases__ if b is not object)
    head = f"class {cls.__name__}({bases}): " if bases else f"class {cls.__name__}: "
    members = [n for n, v in vars(cls).items()
               if not n.startswith("_") and (inspect.isfunction(v) or isinstance(v, (property, classmethod)))
               and n not in ("step", "check")]
    return "\n\n".join([head + (inspect.getdoc(cls) or ""), *filter(None, (_member_doc(cls, n) for n in members))])


def _constant_doc(name: str, value) -> str:
    if isinstance(value, re.Pattern):
        shown = f"re.compile({value.pattern!r})"
    elif isinstance(value, frozenset):
        shown = f"frozenset({''.join(sorted(value))!r})"
    else:
        shown = repr(value)
    return f"{name} = {shown}"


def _library_section(only: frozenset[str] | None = None) -> str:
    """Every name a program may import from the library (or those in ``only``), documented where
    it is defined."""
    imports = allowed_imports()
    modules = [m for m in imports if m.startswith(LIBRARY_PACKAGE + ".")]
    if not modules:
        return ""
    parts = ["## The program library (import these names from the module named above them)"]
    constants: dict[str, tuple[str, list[str]]] = {}
    for module_name in sorted(modules, key=lambda m: (m not in LIBRARY_FIRST, LIBRARY_FIRST.index(m) if m in LIBRARY_FIRST else 0, m)):
        module = importlib.import_module(module_name)
        entries = []
        for name in sorted(imports[module_name], key=lambda n: list(vars(module)).index(n)):
            value = getattr(module, name)
            if only is not None and name not in only:
                continue
            if callable(value) and getattr(value, "__module__", None) == module_name:
                entries.append(_class_doc(value) if isinstance(value, type) else f"{_signature(value, name)}\n    {_doc(value)}")
            elif not callable(value) and name not in UNDOCUMENTED_CONSTANTS:
                constants.setdefault(name, (_constant_doc(name, value), []))[1].append(module_name)
        if entries:
            parts += [f"### {module_name}", inspect.getdoc(module) or "", *entries]
    parts.append("### Constants (importable from each module listed after them)")
    parts += [f"{doc}  ({', '.join(where)})" for doc, where in constants.values()]
    return "\n\n".join(p for p in parts if p)


def api_reference(library: frozenset[str] | None = None) -> str:
    """The program API, written from the live docstrings and signatures (of the library, only the
    names in ``library`` when given)."""
    parts = [
        "## Programs and their weights",
        inspect.getdoc(model_module) or "",
        "class Model: " + (inspect.getdoc(Model) or ""),
        *(_member_doc(Model, n) for n in PRIMITIVES),
        "## TextModel: programs that write text",
        inspect.getdoc(text_model_module) or "",
        "class TextModel(Model): " + (inspect.getdoc(TextModel) or ""),
        _signature(TextModel.__init__, "__init__"),
        *filter(None, (_member_doc(TextModel, n) for n in (*TEXT_HELPERS, "text", "n_tokens"))),
        "## Tokens, chunks and token masks",
        _fields(Token),
        _fields(Chunk),
        "class TokenMask: " + (inspect.getdoc(TokenMask) or "") + " Combine masks with | (union), & (intersection), ~ (complement).",
        "self.lm.masks is a TokenMasks. " + (inspect.getdoc(TokenMasks) or ""),
        *(_member_doc(TokenMasks, n) for n in MASK_METHODS),
        "## Constraints (with self.constrain_step)",
        *(_class_doc(c) for c in (Regex, Grammar, JsonSchema)),
        _class_doc(ConstrainedSpan),
        CONSTRAINT_DIALECTS,
        "## Distributions (for self.sample / self.observe)",
        *(f"{_signature(c.__init__, c.__name__).split(' ', 1)[1].replace('(self, ', '(')}: {inspect.getdoc(c)}"
          for c in (Bernoulli, Categorical, Geometric)),
        _library_section(library),
    ]
    return "\n\n".join(p for p in parts if p)


def rules() -> str:
    """What the validator allows, written from its own allow-lists."""
    imports = "\n".join(f"- from {m} import {', '.join(sorted(names))}" for m, names in sorted(allowed_imports().items()))
    return (
        "## Rules (programs breaking them are rejected before running)\n"
        f"Allowed imports:\n{imports}\n"
        "A standard-library module above may also be imported whole (`import re`) and then used only as "
        "re.<a listed name>; import selfsteer names only with `from ... import ...`.\n"
        f"Allowed builtins: {', '.join(sorted(SAFE_BUILTINS))}.\n"
        f"The LM may be used only as self.lm.<{'|'.join(sorted(LM_ATTRIBUTES))}> (and passed to super().__init__).\n"
        "No file, network, process or introspection access: no open, eval, exec, getattr, type, globals, "
        "no __dunder__ names or attributes (except super().__init__), no _private attributes except your own "
        "self._name, no global/nonlocal, no bare except, no decorators except property/staticmethod.\n"
        "Runs are limited in steps, time and memory: keep every loop bounded."
    )


def system_prompt(library: frozenset[str] | None = None) -> str:
    """The system message; ``library`` limits the library reference to those names (compact)."""
    return "\n\n".join([INTRO, api_reference(library), rules(), GUIDANCE, OUTPUT_CONTRACT])


def library_names_used(examples: Sequence[Example]) -> frozenset[str]:
    """The library names the examples import, and the prose token classes they reach through
    ``self.tokens``: what a compact prompt must document for them."""
    names = {"ProseTokens"}
    for ex in examples:
        for node in ast.walk(parse_python(ex.source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(LIBRARY_PACKAGE):
                names |= {a.name for a in node.names}
    return frozenset(names)


def task_message(task: str) -> str:
    return (f"Task: {task}\n\nWrite the inference program for this task: one ```python block defining one "
            "program class with __init__(self, lm, task), async def step(self) and def check(self, output).")


def fenced(source: str) -> str:
    return f"```python\n{source.rstrip()}\n```"


def build_messages(
    task: str,
    *,
    feedback: str | None = None,
    previous: str | None = None,
    exclude_family: str | None = None,
    examples: Sequence[Example] | None = None,
    n_examples: int = 3,
    compact: bool = False,
) -> list[dict]:
    """Chat messages asking for a program for ``task`` (see the module docstring).

    ``examples`` overrides the few-shot examples (default: `pick_examples` with
    ``exclude_family``); ``feedback`` is the previous attempt's error and ``previous`` its
    completion. ``compact`` documents only the library names the examples use (a shorter
    prompt for small local planners).
    """
    if examples is None:
        examples = pick_examples(task, exclude_family=exclude_family, k=n_examples)
    library = library_names_used(examples) if compact else None
    messages = [{"role": "system", "content": system_prompt(library)}]
    for ex in examples:
        messages.append({"role": "user", "content": task_message(ex.task)})
        messages.append({"role": "assistant", "content": fenced(ex.source)})
    messages.append({"role": "user", "content": task_message(task)})
    if feedback:
        if previous:
            messages.append({"role": "assistant", "content": previous})
        messages.append({"role": "user", "content": (
            f"{feedback}\n\nFix the problem and answer with the whole corrected program in one ```python block.")})
    return messages
