"""Static validation: a catalogue of real escape attempts is rejected with precise messages, and
well-formed programs (including every library program in planner form) are accepted."""

from __future__ import annotations

import pytest

from selfsteer.planners.examples import as_planner_program, library_programs
from selfsteer.planners.validate import ValidationError, validate_program

GOOD = '''
import re
from selfsteer.smc import TextModel

BANNED = "eE"


class NoLetterE(TextModel):
    """Strategy: tokens without "e". Step granularity: one token. End conditions: EOS or a period."""

    def __init__(self, lm, task):
        super().__init__(lm, "Write a sentence.", task, max_tokens=40)
        self.allowed = lm.masks.without(BANNED) | lm.masks.eos

    async def step(self):
        tok = await self.next_token(mask=self.allowed)
        if tok.is_eos or re.search(r"[.!?]$", self.text):
            self.finish(self.text.strip())

    def check(self, output):
        return bool(output) and not any(c in output for c in BANNED)
'''


def program(step_body: str, *, top: str = "", init_extra: str = "") -> str:
    """A well-formed program whose step() runs ``step_body`` (indented 8 spaces)."""
    body = "\n".join("        " + line for line in step_body.strip().splitlines())
    extra = "\n".join("        " + line for line in init_extra.strip().splitlines()) if init_extra else ""
    return (
        f"from selfsteer.smc import TextModel\n{top}\n\n"
        "class P(TextModel):\n"
        '    """Strategy: test."""\n\n'
        "    def __init__(self, lm, task):\n"
        '        super().__init__(lm, "Write.", task)\n'
        f"{extra}\n"
        "    async def step(self):\n"
        f"{body}\n\n"
        "    def check(self, output):\n"
        "        return True\n"
    )


def test_accepts_a_plain_program():
    assert validate_program(GOOD).class_name == "NoLetterE"


def test_every_library_program_is_accepted_in_planner_form():
    programs = library_programs()
    if not programs:
        pytest.skip("the program library (selfsteer.programs.registry) is not installed yet")
    for cls in programs:
        for _, params in cls.SPEC.examples:
            source = as_planner_program(cls, params)
            assert validate_program(source).class_name == cls.__name__


# (name, source, a fragment the message must contain)
ATTACKS = [
    ("import os", program('os.system("rm -rf /")', top="import os"), "importing `os` is not allowed"),
    ("from subprocess", program('run(["ls"])', top="from subprocess import run"), "importing from `subprocess`"),
    ("import as alias", program("x.getcwd()", top="import os as x"), "importing `os` is not allowed"),
    ("dotted selfsteer import", program("pass", top="import selfsteer.smc"), "write `from selfsteer.smc import TextModel`"),
    ("load_lm is not exported", program("pass", top="from selfsteer.smc import load_lm"), "`load_lm` cannot be imported"),
    ("star import", program("pass", top="from re import *"), "import *"),
    ("relative import", program("pass", top="from . import secrets"), "importing from `.`"),
    ("open", program('self.finish(open("/etc/passwd").read())'), "`open` is not available"),
    ("__import__", program('__import__("os").system("id")'), "`__import__` is not allowed"),
    ("eval", program('eval("1+1")'), "`eval` is not available"),
    ("exec", program('exec("import os")'), "`exec` is not available"),
    ("compile", program('compile("x", "f", "exec")'), "`compile` is not available"),
    ("getattr trick", program('getattr(self, "__class__")'), "`getattr` is not available"),
    ("setattr", program('setattr(self, "x", 1)'), "`setattr` is not available"),
    ("vars", program("vars(self)"), "`vars` is not available"),
    ("globals", program('globals()["x"] = 1'), "`globals` is not available"),
    ("type()", program("type(self)"), "`type` is not available"),
    ("subclasses walk", program("x = ().__class__.__base__.__subclasses__()"), "`__subclasses__` is not allowed"),
    ("globals of a function", program("g = self.step.__func__.__globals__"), "`__globals__` is not allowed"),
    ("builtins dict", program('b = __builtins__["open"]'), "`__builtins__` is not allowed"),
    ("generator frame", program("g = (i for i in [1])\nf = g.gi_frame.f_back.f_globals"), "`.gi_frame` is not allowed"),
    ("traceback frame", program("try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    e.__traceback__.tb_frame"), "`__traceback__`"),
    ("format string attribute walk", program('s = "{0.__class__}".format(self)'), "`.format` is only allowed"),
    ("format_map", program('s = "{x}".format_map({"x": 1})'), "`.format_map` is not allowed"),
    ("private engine state", program("self.prior._handle = None"), "private attribute `._handle`"),
    ("LM internals", program("m = self.lm.model"), "`.model` of the LM is not available"),
    ("LM passed around", program("m = self.lm"), "use the LM only as"),
    ("ctypes via numpy rng", program("p = self.rng.bit_generator.ctypes"), "`.bit_generator` is not allowed"),
    ("save weights", program('self.lm.tokenizer.save_pretrained("/tmp/x")'), "`.tokenizer` of the LM"),
    ("module stored", program("m = re", top="import re"), "use the module `re` only as `re.<name>`"),
    ("module internals", program("e = re.enum", top="import re"), "`re.enum` is not allowed"),
    ("global statement", program("global X\nX = 1"), "`global` is not allowed"),
    ("bare except swallows death", program("try:\n    pass\nexcept:\n    pass"), "bare `except:`"),
    ("BaseException", program("try:\n    pass\nexcept BaseException:\n    pass"), "bare `except:`"),
    ("rebinding a builtin", program("open = 3"), "do not rebind the builtin name `open`"),
    ("decorator", program("pass", top="def deco(f):\n    return f\n\n@deco\ndef g():\n    pass"), "decorators other than"),
    ("module-level code", program("pass", top='print("hi")'), "only imports, constants, functions"),
    ("sync step", program("pass").replace("async def step", "def step"), "step must be a coroutine"),
    ("two classes", program("pass", top="class Helper:\n    pass"), "define exactly one class"),
    ("wrong constructor", program("pass").replace("(self, lm, task)", "(self, lm, task, n=3)"), "exactly `def __init__(self, lm, task):`"),
    ("no super init", program("pass").replace('        super().__init__(lm, "Write.", task)\n', "        self.x = 1\n"), "must call `super().__init__"),
    ("wrong base", program("pass").replace("class P(TextModel)", "class P(object)"), "must derive from TextModel"),
    ("metaclass", program("pass").replace("class P(TextModel)", "class P(TextModel, metaclass=M)"), "class keywords"),
    ("dunder method", program("pass").replace("    def check(self", "    def __getattr__(self, name):\n        return 1\n\n    def check(self"), "`__getattr__` is not allowed"),
    ("match keyword reads a dunder", program("match self:\n    case TextModel(__reduce_ex__=r):\n        pass"),
     "the attribute `__reduce_ex__` is not allowed"),
    ("match keyword reads a frame", program("g = (i for i in [1])\nmatch g:\n    case Bernoulli(gi_frame=f):\n        pass",
                                           top="from selfsteer.smc import Bernoulli"), "`.gi_frame` is not allowed"),
    ("match keyword reads a private", program("match self:\n    case TextModel(_handle=h):\n        pass"), "private attribute `._handle`"),
    ("match keyword captures the LM", program("match self:\n    case TextModel(lm=m):\n        pass"), "match patterns may not read the LM"),
    ("import alias binds __builtins__", program("pass", top="import asyncio as __builtins__"), "the name `__builtins__` is not allowed"),
    ("import alias binds a builtin", program("pass", top="from re import compile as open"), "do not rebind the builtin name `open`"),
    ("module alias in another scope", program("m = x", top="def f():\n    import re as x\n    return x.compile"),
     "the name `x` is not defined"),
    ("parameter does not define a name elsewhere", program("y = eval", top="def f(eval2):\n    return eval2"),
     "`eval` is not available"),
    ("method cannot see class-body names", program("self.finish(LIMIT)").replace('    """Strategy: test."""\n',
     '    """Strategy: test."""\n    LIMIT = 3\n'), "the name `LIMIT` is not defined"),
    ("mangled private attribute", program("x = self.__secret"), "the attribute `__secret` is not allowed"),
    ("syntax error", "class P(TextModel:\n    pass\n", "syntax error"),
    ("empty completion", "", "holds no program"),
    ("huge completion", "x = 1\n" * 20_000, "characters long"),
]


@pytest.mark.parametrize("name,source,fragment", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_rejects_escape_attempts_with_a_precise_message(name, source, fragment):
    with pytest.raises(ValidationError) as info:
        validate_program(source)
    assert fragment in str(info.value), str(info.value)


def test_messages_carry_line_numbers_in_order():
    src = program('open("x")\neval("y")', top="import os")
    with pytest.raises(ValidationError) as info:
        validate_program(src)
    lines = [int(p.split(":")[0].removeprefix("line ")) for p in info.value.problems if p.startswith("line ")]
    assert lines == sorted(lines) and len(lines) >= 3


def test_scopes_resolve_like_python():
    src = program("self.finish(str(helper(2)) + str([k for k in range(2)]) + str((z := 3)))",
                  top="import math\n\n\ndef helper(n):\n    total = n\n    for i in range(n):\n        total += math.floor(i)\n    return total")
    assert validate_program(src).class_name == "P"


def test_plain_format_and_fstrings_are_fine():
    src = program('s = "{} and {name}".format(1, name=2)\nt = f"{s!r:>10}"')
    assert validate_program(src).class_name == "P"


def test_infinite_loops_and_bombs_pass_validation_and_are_left_to_the_sandbox():
    # Halting and memory use cannot be decided statically; the sandbox stops them (test_planners_sandbox).
    for body in ("while True:\n    pass", 'x = "a" * (50 * 10**9)'):
        assert validate_program(program(body)).class_name == "P"
