"""The trace viewer: traces from real runs, pages rendered by a real headless Chromium.

The Chromium tests skip when no binary is found; CI installs it with
``apt-get install -y chromium`` (Debian).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from selfsteer.cli.main import main
from selfsteer.smc import ExactLM, LMContext, Model, TextModel, Trace, smc, smc_steer
from selfsteer.smc.view import parent_indices, render_html, view_model

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH; install it with `apt-get install -y chromium`"
)

# An LM token that is markup: the page must show it as text and never run it (a <script> put
# in with innerHTML would not run, but the <img> error handler would).
SCRIPT_TOKEN = "<script>document.body.dataset.pwned=1</script><img src=x onerror=document.body.dataset.pwned=2>"


class Spell(Model):
    """Writes exact-LM tokens until EOS; the token " c" kills the particle, and each "a" token
    multiplies the weight by exp(-0.7), so weights differ and resampling happens."""

    def __init__(self, lm):
        super().__init__()
        self.ctx = LMContext(lm, "a")

    async def step(self):
        tok = await self.sample(self.ctx.next_token())
        if tok.is_eos:
            self.finish(self.ctx.text)
            return
        self.condition(tok.text != " c")
        self.score(-0.7 * (tok.text == "a"))


def spell_lm() -> ExactLM:
    return ExactLM(("a", SCRIPT_TOKEN, " c"), max_len=6, seed=3)


@pytest.fixture(scope="module")
def smc_trace() -> Trace:
    return smc(Spell(spell_lm()), 8, ess_threshold=0.9, seed=0, record=True).trace


@pytest.fixture(scope="module")
def steer_trace() -> Trace:
    return smc_steer(Spell(spell_lm()), 3, n_beam=2, seed=7, record=True).trace


def states(trace: Trace) -> set[str]:
    return {p["state"] for s in view_model(trace.data)["steps"] for p in s["particles"]}


def test_smc_trace_exercises_the_viewer(smc_trace):
    """The fixture run has what the page must show: resampling, deaths, finished particles, markup."""
    steps = smc_trace.data["steps"]
    assert len(steps) >= 3
    assert any(s["resampled"] for s in steps)
    assert states(smc_trace) == {"running", "finished", "dead"}
    assert any(SCRIPT_TOKEN in p["text"] for s in steps for p in s["particles"])


# ----- the view model ---------------------------------------------------------------------------
def _step(finished: list[bool], ancestors: list[int] | None = None) -> dict:
    particles = [{"text": "", "log_weight": 0.0, "finished": f, "alive": True} for f in finished]
    return {"step": 0, "particles": particles, "ess": 1.0, "resampled": ancestors is not None,
            "ancestors": ancestors}


def test_parent_indices_smc_rule():
    steps = [_step([False] * 3, [2, 2, 0]), _step([False] * 3), _step([True, False, False])]
    assert parent_indices(steps) == [[None] * 3, [2, 2, 0], [0, 1, 2]]


def test_parent_indices_steer_rule_expands_unfinished_survivors():
    # survivors 3 (finished: kept once) and 0 (unfinished: n_beam=2 copies)
    steps = [_step([False, False, False, True], [3, 0]), _step([True, False, False])]
    assert parent_indices(steps, n_beam=2) == [[None] * 4, [3, 0, 0]]


def test_parent_indices_unknown_when_counts_disagree():
    steps = [_step([False, False], [0, 1]), _step([False] * 5)]
    assert parent_indices(steps, n_beam=2) == [[None, None], [None] * 5]


@pytest.mark.parametrize("algorithm, n_beam", [("smc", 1), ("smc_steer", 2)])
def test_recorded_parents_follow_the_loop_and_feed_the_result(algorithm, n_beam):
    """The loop's step records carry the parents; they agree with the expansion rule of each
    algorithm, with the trace, and give the result's ESS history and resampling count."""
    for seed in range(6):
        r = (smc(Spell(spell_lm()), 8, ess_threshold=0.9, seed=seed, record=True) if algorithm == "smc"
             else smc_steer(Spell(spell_lm()), 3, n_beam=n_beam, seed=seed, record=True))
        steps = r.trace.data["steps"]
        assert [s["parents"] for s in steps] == [None if rec.parents is None else list(rec.parents) for rec in r.records]
        assert [s["ancestors"] for s in steps] == [None if rec.ancestors is None else list(rec.ancestors)
                                                   for rec in r.records]
        without = [{k: v for k, v in s.items() if k != "parents"} for s in steps]
        assert parent_indices(steps) == parent_indices(without, n_beam=n_beam)
        assert r.ess_history == [s["ess"] for s in steps] and r.n_steps == len(r.records)
        assert r.n_resamples == sum(s["resampled"] for s in steps)


def test_malformed_parents_are_refused():
    trace = smc(Spell(spell_lm()), 4, ess_threshold=0.9, seed=0, record=True).trace.data
    bad = json.loads(json.dumps(trace))
    bad["steps"][1]["parents"] = [99] * len(bad["steps"][1]["particles"])
    with pytest.raises(ValueError, match="step 2: parents must be"):
        render_html(bad)


@pytest.mark.parametrize("name", ["smc_trace", "steer_trace"])
def test_parents_inherit_their_childrens_prefix(name, request):
    """Every particle's text extends its parent's, so the highlighted part is exactly the new text."""
    trace = request.getfixturevalue(name)
    model = view_model(trace.data)
    moved = 0
    for prev, step in zip(model["steps"], model["steps"][1:], strict=False):
        for i, p in enumerate(step["particles"]):
            parent = prev["particles"][p["parent"]]
            assert p["text"].startswith(parent["text"])
            assert p["kept"] == len(parent["text"])
            assert parent["state"] != "dead"
            moved += p["parent"] != i
    assert moved > 0  # resampling (or beam expansion) really reordered the population


def test_steer_pool_sizes_follow_the_beam(steer_trace):
    steps = steer_trace.data["steps"]
    assert len(steps[0]["particles"]) == 3 * 2
    for prev, step in zip(steps, steps[1:], strict=False):
        kept = [prev["particles"][a] for a in prev["ancestors"]]
        assert len(step["particles"]) == sum(1 if p["finished"] else 2 for p in kept)


def test_weights_are_normalised_log_weights(smc_trace):
    for raw, shown in zip(smc_trace.data["steps"], view_model(smc_trace.data)["steps"], strict=True):
        log_w = [-math.inf if p["log_weight"] is None else p["log_weight"] for p in raw["particles"]]
        total = sum(math.exp(lw) for lw in log_w)
        for lw, p in zip(log_w, shown["particles"], strict=True):
            assert p["weight"] == pytest.approx(math.exp(lw) / total, abs=1e-12)
            assert (p["state"] == "dead") == (lw == -math.inf)


# ----- the page -----------------------------------------------------------------------------
def embedded(page: str) -> dict:
    match = re.search(r'<script id="trace-data" type="application/json">(.*?)</script>', page, re.S)
    return json.loads(match.group(1))


def test_page_is_self_contained(smc_trace):
    page = render_html(smc_trace)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"<link\b|@import|url\(", page, re.I)
    assert page.count("<script") == 2  # the data block and the inline program


def test_markup_in_particle_text_is_escaped(smc_trace):
    page = render_html(smc_trace)
    assert SCRIPT_TOKEN not in page
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert embedded(page) == json.loads(json.dumps(view_model(smc_trace.data)))


def test_render_accepts_trace_dict_and_path(smc_trace, tmp_path):
    path = smc_trace.save(tmp_path / "run.json")
    assert render_html(path) == render_html(smc_trace.data) == render_html(smc_trace)
    assert render_html(str(path)) == render_html(smc_trace)


def test_render_rejects_what_is_not_a_trace(tmp_path):
    with pytest.raises(ValueError, match="record=True"):
        render_html({"steps": []})
    with pytest.raises(ValueError, match=r"step 1: every particle needs the fields text"):
        render_html({"version": 1, "steps": [{"step": 1, "particles": [{"text": "x"}], "ess": 1.0}]})
    bad = {"version": 1, "steps": [_step([False, False], [0, 7])]}
    with pytest.raises(ValueError, match="ancestors are not indices below 2"):
        render_html(bad)
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a selfsteer trace"):
        render_html(tmp_path / "list.json")


def test_empty_and_unfinished_traces_render(tmp_path):
    empty = {"version": 1, "algorithm": "smc", "n_particles": 2, "steps": [], "final": None}
    assert embedded(render_html(empty))["steps"] == []
    nan = {"version": 1, "steps": [dict(_step([False]), ess=float("nan"))], "final": None}
    assert embedded(render_html(nan))["steps"][0]["ess"] is None


# ----- headless Chromium ------------------------------------------------------------------------
def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


def dump_dom(tmp_path: Path, page: Path, fragment: str = "") -> str:
    return chromium(tmp_path, "--dump-dom", "--virtual-time-budget=3000", page.as_uri() + fragment).stdout


def rows(dom: str) -> int:
    return len(re.findall(r'<div class="particle (?:running|finished|dead)"', dom))


@needs_chromium
def test_chromium_runs_the_page(smc_trace, tmp_path):
    page = tmp_path / "run.html"
    page.write_text(render_html(smc_trace), encoding="utf-8")
    steps = smc_trace.data["steps"]
    dom = dump_dom(tmp_path, page)
    assert 'data-rendered="true"' in dom
    assert f'data-step="{len(steps)}"' in dom  # opens on the last step
    assert rows(dom) == len(steps[-1]["particles"])
    ancestry = re.search(r'<svg id="ancestry".*?</svg>', dom, re.S).group(0)
    assert ancestry.count("<circle") == sum(len(s["particles"]) for s in steps)
    ess_chart = re.search(r'<svg id="ess".*?</svg>', dom, re.S).group(0)
    assert ess_chart.count("<circle") == len(steps)
    assert "&lt;script&gt;document.body.dataset.pwned=1&lt;/script&gt;&lt;img src=x" in dom  # shown as text...
    assert "data-pwned" not in dom  # ...and never run


@needs_chromium
def test_chromium_opens_the_step_in_the_url(smc_trace, tmp_path):
    page = tmp_path / "run.html"
    page.write_text(render_html(smc_trace), encoding="utf-8")
    dom = dump_dom(tmp_path, page, "#step=2")
    assert 'data-step="2"' in dom
    assert rows(dom) == len(smc_trace.data["steps"][1]["particles"])


# Appended to a copy of the page, after the viewer's own script: drives it with synthetic events
# (keys, a click on an ancestry column, a hover on a particle row) and records what it showed.
DRIVER = """<script>
const shown = [];
const press = (key) => {
  document.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true }));
  shown.push(document.body.dataset.step);
};
["Home", "ArrowRight", "ArrowRight", "ArrowLeft", "End", "ArrowRight"].forEach(press);
document.querySelector('#ancestry rect.column[data-step="2"]').dispatchEvent(new MouseEvent("click"));
shown.push(document.body.dataset.step);
press("End");
document.querySelector("#particles .particle").dispatchEvent(new MouseEvent("mouseenter"));
document.body.dataset.lineage = document.querySelectorAll("#ancestry .link.lineage").length;
press("Home");
press(" ");
document.body.dataset.shown = shown.join(",");
</script></body>"""


@needs_chromium
def test_chromium_keys_clicks_hover_and_play(smc_trace, tmp_path):
    n = len(smc_trace.data["steps"])
    page = tmp_path / "driven.html"
    page.write_text(render_html(smc_trace).replace("</body>", DRIVER), encoding="utf-8")
    dom = chromium(tmp_path, "--dump-dom", "--virtual-time-budget=10000", page.as_uri()).stdout
    assert f'data-shown="1,2,3,2,{n},{n},2,{n},1,1"' in dom
    assert f'data-lineage="{n - 1}"' in dom  # one highlighted link per step back to step 1
    assert f'data-step="{n}"' in dom  # space played the run to its last step...
    play_button = re.search(r'<button id="play"[^>]*>.*?</button>', dom, re.S).group(0)
    assert "playing" not in play_button and "<span>play</span>" in play_button  # ...and stopped


@needs_chromium
def test_chromium_renders_a_trace_without_steps(tmp_path):
    page = tmp_path / "empty.html"
    empty = {"version": 1, "algorithm": "smc", "n_particles": 2, "steps": [],
             "final": {"status": "all_dead", "log_ml": None, "posterior": []}}
    page.write_text(render_html(empty), encoding="utf-8")
    dom = dump_dom(tmp_path, page)
    assert 'data-rendered="true"' in dom
    assert "No steps were recorded." in dom and "no finished particle survived" in dom


@needs_chromium
def test_chromium_highlights_new_text_by_code_point(tmp_path):
    """Python counts the inherited prefix in code points; the page must too (emoji are 2 in JS)."""
    def step(n: int, text: str) -> dict:
        particle = {"text": text, "log_weight": 0.0, "finished": False, "alive": True}
        return {"step": n, "particles": [particle], "ess": 1.0, "resampled": False, "ancestors": None}

    trace = {"version": 1, "steps": [step(1, "a\U0001F600"), step(2, "a\U0001F600b\U0001F600")], "final": None}
    page = tmp_path / "emoji.html"
    page.write_text(render_html(trace), encoding="utf-8")
    assert "<mark>b\U0001F600</mark>" in dump_dom(tmp_path, page)


@needs_chromium
def test_chromium_screenshot_is_not_blank(smc_trace, tmp_path):
    page = tmp_path / "run.html"
    page.write_text(render_html(smc_trace), encoding="utf-8")
    png = tmp_path / "run.png"
    chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,900", "--virtual-time-budget=3000",
             page.as_uri() + "#step=3")
    image = Image.open(png).convert("RGB")
    assert image.size == (1280, 900)
    counts = image.getcolors(maxcolors=1280 * 900)  # [(count, (r, g, b))]
    background = max(counts)[0]
    assert background < 0.8 * 1280 * 900  # at least a fifth of the page is drawn
    assert len(counts) > 100
    colours = [c for _, c in counts]

    def near(rgb: tuple[int, int, int]) -> bool:
        return any(sum(abs(a - b) for a, b in zip(c, rgb, strict=True)) < 12 for c in colours)

    # colours that only the page's script draws (the legend holds the state colours statically):
    # the new-text highlight, the weight bars and the current ancestry column
    assert near((0xFD, 0xE6, 0x8A)) and near((0x93, 0xC5, 0xFD)) and near((0xE0, 0xEC, 0xFF))


class NoE(TextModel):
    """Three tokens from the bundled model without the letter e."""

    async def step(self):
        masks = self.lm.masks
        tok = await self.next_token(mask=masks.without("eE") | masks.eos)
        if tok.is_eos or self.n_tokens >= 3:
            self.finish(self.text)


@pytest.mark.slow
@needs_chromium
def test_bundled_model_trace_renders(lm, tmp_path):
    result = smc(NoE(lm, "Write a sentence.", max_tokens=8), 4, ess_threshold=1.0, seed=0, record=True)
    steps = result.trace.data["steps"]
    assert 1 <= len(steps) <= 3
    page = tmp_path / "lm.html"
    page.write_text(render_html(result.trace), encoding="utf-8")
    dom = dump_dom(tmp_path, page)
    assert 'data-rendered="true"' in dom
    assert rows(dom) == 4
    assert 'class="status completed"' in dom
    for output in result.posterior:  # the posterior table shows every output, as text
        assert output.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in dom


# ----- the CLI --------------------------------------------------------------------------------
def test_cli_writes_the_page_next_to_the_trace(smc_trace, tmp_path):
    trace = smc_trace.save(tmp_path / "run.json")
    done = subprocess.run([sys.executable, "-m", "selfsteer.cli.main", "view", str(trace)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "run.html")
    assert (tmp_path / "run.html").read_text(encoding="utf-8") == render_html(smc_trace)


def test_cli_output_option(smc_trace, tmp_path, capsys):
    trace = smc_trace.save(tmp_path / "run.json")
    out = tmp_path / "pages" / "page.html"
    out.parent.mkdir()
    assert main(["view", str(trace), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert embedded(out.read_text(encoding="utf-8"))["algorithm"] == "smc"


def test_cli_missing_file_fails_clearly(tmp_path):
    done = subprocess.run([sys.executable, "-m", "selfsteer.cli.main", "view", str(tmp_path / "nope.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "no trace file at" in done.stderr and "--trace" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not a JSON text file"),
        ('{"hello": 1}', "is not a selfsteer trace"),
        ('{"version": 1, "steps": [{"step": 1}]}', "malformed trace: step 1 needs the fields"),
    ],
)
def test_cli_bad_trace_fails_clearly(tmp_path, capsys, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert main(["view", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err
    assert not (tmp_path / "bad.html").exists()


def test_cli_unwritable_output_fails_clearly(smc_trace, tmp_path, capsys):
    trace = smc_trace.save(tmp_path / "run.json")
    assert main(["view", str(trace), "-o", str(tmp_path / "missing-dir" / "x.html")]) == 2
    assert "cannot write" in capsys.readouterr().err
