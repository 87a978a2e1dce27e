"""Side-by-side performance benchmarks: selfsteer vs genlm-control vs llamppl vs plain ``generate``.

Run ``python -m benchmarks.run --suite all|foundation|scaling|memory [--quick] [--out DIR]`` from
the repository root (see benchmarks/README.md). Modules: `tasks` (the task description and the
shared validity checker), `systems` (one runner per system), `harness` (interleaved, warmed-up
timing), `foundation`/`scaling`/`memory` (the suites), `targets` (the issues' targets),
`plots`/`report` (PNG and Markdown output), `run` (the command).
"""
