"""Fluency and validity of the offline default on freely phrased, mostly compound tasks.

For each task: ``solve`` with the library planner and the bundled follower, then an independent
checker written here (plain regexes, sharing no code with the programs) and the share of answer
words found in an English word list (Debian's ``wamerican``: /usr/share/dict/american-english).
Run it on two checkouts to compare before and after::

    OMP_NUM_THREADS=1 python benchmarks/composed_fluency.py --out before.json
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from collections.abc import Callable
from pathlib import Path

WORD_LIST = Path("/usr/share/dict/american-english")
WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)*")


def words(text: str) -> list[str]:
    return WORD.findall(text)


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def one_sentence(text: str) -> bool:
    return "\n" not in text.strip() and len(sentences(text)) == 1 and text.strip()[-1:] in ".!?"


TASKS: list[tuple[str, Callable[[str], bool]]] = [
    ("Write a 9-word sentence about a bicycle without the letter e.",
     lambda t: one_sentence(t) and len(words(t)) == 9 and "e" not in t.lower()),
    ("Write a sentence about a garden with exactly 7 words and without the letter 'u'.",
     lambda t: one_sentence(t) and len(words(t)) == 7 and "u" not in t.lower()),
    ("Write a sentence of exactly 8 words that includes the word 'candle'.",
     lambda t: one_sentence(t) and len(words(t)) == 8 and "candle" in [w.lower() for w in words(t)]),
    ("Write an acrostic poem about the weather with one line per letter of RAIN.",
     lambda t: [ln.strip()[:1].upper() for ln in t.strip().splitlines() if ln.strip()] == list("RAIN")),
    ("Write a sentence about a concert where word number 4 is 'music'.",
     lambda t: one_sentence(t) and len(words(t)) >= 4 and words(t)[3].lower() == "music"),
    ("Write a sentence about the sea without using the character 'o'.",
     lambda t: one_sentence(t) and "o" not in t.lower()),
    ("Write a sentence mentioning 'copper', 'orchard' and 'violin'.",
     lambda t: one_sentence(t) and {"copper", "orchard", "violin"} <= {w.lower() for w in words(t)}),
    ("Write a paragraph of 3 sentences about a storm, each starting with 'Then'.",
     lambda t: len(sentences(t)) == 3 and all(words(s)[:1] == ["Then"] for s in sentences(t))),
    ("Write a sentence about winter where every word starts with the letter s.",
     lambda t: one_sentence(t) and all(w[0].lower() == "s" for w in words(t))),
    ("Write a sentence of at most 12 words about a lantern in which no word is longer than 5 letters.",
     lambda t: one_sentence(t) and 1 <= len(words(t)) <= 12 and all(len(w) <= 5 for w in words(t))),
]


def main() -> None:
    from selfsteer.planners.library import LibraryPlanner
    from selfsteer.planners.solve import solve
    from selfsteer.smc import load_lm

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particles", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    english = {w.strip().lower() for w in WORD_LIST.read_text(encoding="utf-8", errors="ignore").splitlines()}
    lm, planner = load_lm(), LibraryPlanner()
    rows = []
    for task, independent in TASKS:
        t0 = time.monotonic()
        result = solve(task, planner=planner, lm=lm, n_particles=args.particles, seed=args.seed, cache=False, attempts=2)
        answer = result.answer if isinstance(result.answer, str) else ""
        ws = [w.lower() for w in words(answer)]
        rows.append({
            "task": task, "answer": answer, "program": result.plan.program_name if result.plan else None,
            "check_passed": result.check_passed, "independent_pass": bool(answer) and independent(answer),
            "words": len(ws), "in_word_list": sum(w in english for w in ws), "seconds": round(time.monotonic() - t0, 1),
        })
        print(json.dumps(rows[-1]), flush=True)
    total = sum(r["words"] for r in rows)
    summary = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "particles": args.particles,
        "independent_pass_rate": sum(r["independent_pass"] for r in rows) / len(rows),
        "word_list_share": sum(r["in_word_list"] for r in rows) / total if total else 0.0,
        "answers_all_english": sum(r["words"] > 0 and r["in_word_list"] == r["words"] for r in rows) / len(rows),
        "seconds_per_task": sum(r["seconds"] for r in rows) / len(rows),
    }
    print(json.dumps(summary))
    args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
