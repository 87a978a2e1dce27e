"""A grammar of the Python subset planner programs are written in, for constrained writing.

`program_grammar()` is a Lark grammar (for `selfsteer.smc.Grammar`) generated from the
validator's allow-lists: import lines name only allowed modules and, per module, only its
allowed names; one class derives from TextModel or a library base and has a docstring, an
optional ``PRIOR``, ``__init__(self, lm, task)``, ``async def step(self)``, helper methods and
``check(self, output)``, with statements nested at most three blocks deep (4-space indents) and
expressions over names, numbers, strings, calls, attributes, subscripts and operators. Names
and attributes cannot start with an underscore (no dunders, no private attributes), so the
grammar itself rules out the validator's attribute escapes; what a context-free grammar cannot
see (names used before they are defined, forbidden builtins such as ``open``) is left to the
validator, which `ProgramWriter.check` runs on every finished program.

`ProgramWriter` writes one program under that grammar with SMC, the planner LM prompted with the
planner's chat messages; `write_program` returns the most probable valid program.
"""

from __future__ import annotations

from functools import cache

from selfsteer.smc import Grammar, LanguageModel, TextModel, smc

from .allowlist import allowed_imports
from .validate import ValidationError, validate_program

PROGRAM_BASES = ("TextModel", "LibraryProgram", "ParagraphProgram")
INDENT = "    "

RULES = r"""
start: importline+ "\n" classdef
classdef: "class " CAMEL "(" BASE "):\n" doc prior? init "\n" step ("\n" method)* "\n" check
doc: "    \"\"\"" DOCTEXT "\"\"\"\n"
prior: "    PRIOR = " STRING "\n"
init: "    def __init__(self, lm, task):\n" block2
step: "    async def step(self):\n" block2
check: "    def check(self, output):\n" block2
method: "    " ASYNC? "def " LNAME "(self" PARAMS? "):\n" block2
block2: stmt2+
stmt2: "        " simple "\n" | "        if " expr ":\n" block3 else3? | "        for " target " in " expr ":\n" block3
else3: "        else:\n" block3
block3: stmt3+
stmt3: "            " simple "\n" | "            if " expr ":\n" block4 | "            for " target " in " expr ":\n" block4
block4: ("                " simple "\n")+
simple: "return " expr | "return" | "pass" | target " = " expr | target AUGOP expr | expr
target: LNAME | "self." LNAME | LNAME ", " LNAME
expr: "not " expr | expr BINOP expr | primary | expr " if " expr " else " expr
primary: atom trailer*
atom: NAME | NUMBER | STRING | "(" arglist ","? ")" | "[" arglist? "]" | "await " primary | "super()" | "-" atom
trailer: "." ATTR | "(" arglist? ")" | "[" expr "]" | "[" expr? ":" expr? "]"
arglist: arg (", " arg)*
arg: expr | LNAME "=" expr
ASYNC: "async "
PARAMS: /(, [a-z][a-z0-9_]*)+/
AUGOP: " += " | " -= "
BINOP: " + " | " - " | " * " | " / " | " // " | " % " | " == " | " != " | " < " | " <= " | " > " | " >= " | " and " | " or " | " in " | " not in " | " | " | " & "
NAME: /[A-Za-z][A-Za-z0-9_]*/
ATTR: /[a-z][A-Za-z0-9_]*/ | "__init__"
LNAME: /[a-z][a-z0-9_]*/
CAMEL: /[A-Z][A-Za-z0-9]*/
NUMBER: /[0-9]+(\.[0-9]+)?/
STRING: /"[^"\\\n]*"/ | /'[^'\\\n]*'/
DOCTEXT: /[A-Za-z0-9 ,.;:'()\n-]+/
"""


def _literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@cache
def program_grammar() -> str:
    """The Lark grammar of planner programs (see the module docstring), from the allow-lists."""
    lines, alternatives = [], []
    for i, (module, names) in enumerate(sorted(allowed_imports().items())):
        if not names:
            continue
        rule = f"names{i}"
        alternatives.append(f'"from {module} import " {rule} "\\n"')
        lines.append(f"{rule}: NAME{i} (\", \" NAME{i})*")
        lines.append(f"NAME{i}: " + " | ".join(_literal(n) for n in sorted(names, key=len, reverse=True)))
    bases = " | ".join(_literal(b) for b in PROGRAM_BASES)
    return "\n".join([RULES.strip(), "importline: " + " | ".join(alternatives), f"BASE: {bases}", *lines]) + "\n"


class ProgramWriter(TextModel):
    """Writes one program under `program_grammar` (one constrained token per step); a finished
    program that the validator rejects fails ``check``."""

    def __init__(self, lm: LanguageModel, prompt, *, max_tokens: int = 700):
        super().__init__(lm, prompt, max_tokens=max_tokens, temperature=1.0)
        self.spec = Grammar(program_grammar())

    async def step(self):
        span = await self.constrain_step(self.spec)
        if span.done or (span.complete and span.text.endswith("\n") and self.n_tokens >= self.max_tokens - 1):
            self.finish(span.text)

    def check(self, output) -> bool:
        try:
            validate_program(output)
        except (ValidationError, SyntaxError):
            return False
        return True


def write_program(lm: LanguageModel, prompt, *, n_particles: int = 4, seed: int = 0, max_tokens: int = 700,
                  time_limit: float | None = None) -> str | None:
    """The most probable grammatical, validated program ``lm`` writes after ``prompt`` (None if none)."""
    result = smc(ProgramWriter(lm, prompt, max_tokens=max_tokens), n_particles, seed=seed, time_limit=time_limit)
    return next(iter(result.posterior), None)
