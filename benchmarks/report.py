"""A Markdown digest of one run's JSON summary: the foundation table, targets, scaling and memory."""

from __future__ import annotations

from typing import Any


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def foundation_table(foundation: dict[str, Any]) -> list[str]:
    lines = ["| task | system | N | max tokens | repeats | wall s (median) | wall s (mean) | CPU s | tokens | tokens/s | "
             "forward passes | ms per forward | valid | wall vs selfsteer |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for task, rows in foundation["summary"].items():
        base = rows.get("selfsteer", {}).get("wall_s")
        for system, r in rows.items():
            if "error" in r:
                lines.append(f"| {task} | {system} | {r['n_particles']} | {r['max_tokens']} | {r['repeats']} | error: {r['error']} |||||||||")
                continue
            rel = r["wall_s"] / base if base else None
            ms_per_forward = r["s_per_forward"] * 1000 if r.get("s_per_forward") else None
            lines.append(
                f"| {task} | {system} | {r['n_particles']} | {r['max_tokens']} | {r['repeats']} | {_fmt(r['wall_s'])} | "
                f"{_fmt(r.get('mean_wall_s'))} | {_fmt(r['cpu_s'])} | {_fmt(r['n_tokens'], 0)} | {_fmt(r['tokens_per_s'], 1)} | "
                f"{_fmt(r.get('n_forward'), 0)} | {_fmt(ms_per_forward, 0)} | "
                f"{_fmt(r['n_valid'], 0)}/{r['n_particles']} | {_fmt(rel)}x |"
            )
    return lines


def targets_table(targets: list[dict[str, Any]]) -> list[str]:
    lines = ["| target | measured | result | note |", "|---|---|---|---|"]
    for t in targets:
        verdict = {True: "PASS", False: "FAIL", None: "not measured"}[t["passed"]]
        if not t["applies"] and t["passed"] is not None:
            verdict += " (indicative: not the target's configuration)"
        lines.append(f"| {t['description']} | {_fmt(t['measured'])} | {verdict} | {t['note']} |")
    return lines


def sweep_table(scaling: dict[str, Any], label: str, key: str) -> list[str]:
    runs = [r for r in scaling[label]["runs"] if not r.get("error")]
    systems = list(dict.fromkeys(r["system"] for r in runs))
    xs = sorted({r[key] for r in runs})
    by = {(r["system"], r[key]): r for r in runs}
    head = f"| {key} | " + " | ".join(f"{s} s (tok/s)" for s in systems) + " |"
    lines = [head, "|" + "---|" * (len(systems) + 1)]
    for x in xs:
        cells = [f"{by[(s, x)]['wall_s']:.2f} ({by[(s, x)]['tokens_per_s']:.0f})" if (s, x) in by else "skipped" for s in systems]
        lines.append(f"| {x} | " + " | ".join(cells) + " |")
    for r in scaling[label]["runs"]:
        if r.get("error"):
            lines.append(f"\n_{r['system']} failed at N={r['n_particles']}, T={r['max_tokens']}: {r['error']}_")
    for sk in scaling[label]["skipped"]:
        lines.append(f"\n_{sk['system']} skipped N={sk['n_particles']}, T={sk['max_tokens']}: {sk['reason']}_")
    return lines


def memory_table(memory: dict[str, Any]) -> list[str]:
    s = memory["summary"]
    lines = [f"Prompt {s.get('prompt_tokens')} tokens, {s.get('new_tokens')} generated per particle.", "",
             "| system | N | process peak RSS MiB | run peak RSS MiB | run growth MiB | growth over N=1 MiB | KV of prompt copies MiB | KV of generated MiB |",
             "|---|---|---|---|---|---|---|---|"]
    for system in ("selfsteer", "generate"):
        if system not in s:
            continue
        r = s[system]
        for i, n in enumerate(r["n_particles"]):
            lines.append(f"| {system} | {n} | {r['max_rss_mib'][i]:.0f} | {r['run_peak_mib'][i]:.0f} | {r['growth_mib'][i]:.0f} | "
                         f"{r['growth_over_first_mib'][i]:.0f} | {r['prompt_copies_kv_mib'][i]:.0f} | {r['generated_kv_mib'][i]:.0f} |")
    errors = [p for p in memory["points"] if p.get("error")]
    lines += [f"\n_{p['system']} N={p['n_particles']} failed: {p['error']}_" for p in errors]
    return lines


def render(summary: dict[str, Any]) -> str:
    m = summary["machine"]
    lines = [f"# Benchmark run ({summary['settings']['size']})", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}, device {m['device']}, "
             f"load average at start {m.get('load_average_at_start')}.", ""]
    runs = summary.get("suite_runs", {})
    if len({r["started"] for r in runs.values()}) > 1:
        lines += [f"- {suite}: run {r['started']} on {r['machine']['cpu']} (torch threads {r['machine']['torch_threads']}, "
                  f"device {r['machine']['device']}): `{r['command']}`" for suite, r in runs.items()] + [""]
    missing = {k: v["reason"] for k, v in summary["systems"].items() if not v["available"]}
    if missing:
        lines += [f"- {k} left out: {v}" for k, v in missing.items()] + [""]
    suites = summary["suites"]
    if "foundation" in suites:
        lines += ["## Foundation", ""] + foundation_table(suites["foundation"]) + [""]
    if summary.get("targets"):
        lines += ["## Targets", ""] + targets_table(summary["targets"]) + [""]
    if "scaling" in suites:
        lines += ["## Scaling over particles", ""] + sweep_table(suites["scaling"], "particles", "n_particles") + [""]
        lines += ["## Scaling over length", ""] + sweep_table(suites["scaling"], "length", "max_tokens") + [""]
    if "memory" in suites:
        lines += ["## Memory against particles", ""] + memory_table(suites["memory"]) + [""]
    return "\n".join(lines)
