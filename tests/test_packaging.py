"""The distribution builds as a wheel whose subpackages import from the wheel itself."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_wheel_builds_and_imports(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("selfsteer-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for sub in ("smc", "programs", "planners", "training", "cli"):
        assert f"selfsteer/{sub}/__init__.py" in names
    assert "selfsteer/smc/lm/transformers/backend.py" in names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import selfsteer.smc, selfsteer.planners, selfsteer.cli.main as m;"
        "assert selfsteer.smc.__file__.startswith(sys.argv[1]), selfsteer.smc.__file__;"
        "print(selfsteer.smc.Model.__name__)"
    )
    run = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "Model"


def test_console_script_is_declared():
    assert 'selfsteer = "selfsteer.cli.main:main"' in (ROOT / "pyproject.toml").read_text()
