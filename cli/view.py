"""``selfsteer view TRACE.json [-o OUT.html]``: write a run trace as one self-contained HTML page.

Record a trace with ``selfsteer run PROGRAM --trace TRACE.json`` (or ``smc(..., record=True)``
and ``result.trace.save(path)``); open the page in any browser, offline.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("view", help="write a run trace (JSON) as a self-contained HTML page")
    p.add_argument("trace", type=Path, help="a trace written by `selfsteer run ... --trace TRACE.json`")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="where to write the page (default: the trace path with .html)")
    p.set_defaults(func=view)


def view(args: argparse.Namespace) -> int:
    from selfsteer.smc.view import render_html

    record_hint = "record one with `selfsteer run PROGRAM --trace TRACE.json`"
    if not args.trace.is_file():
        print(f"error: no trace file at {args.trace}; {record_hint}", file=sys.stderr)
        return 2
    try:
        page = render_html(args.trace)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        print(f"error: {args.trace} is not a JSON text file ({e}); {record_hint}", file=sys.stderr)
        return 2
    except ValueError as e:  # Trace.load and render_html name the file, the fault and the fix
        print(f"error: {e}", file=sys.stderr)
        return 2
    output = args.output or args.trace.with_suffix(".html")
    try:
        output.write_text(page, encoding="utf-8")
    except OSError as e:
        print(f"error: cannot write {output} ({e.strerror}); pick another path with -o", file=sys.stderr)
        return 2
    print(output)
    return 0
