"""Where metrics go: ``out_dir/metrics.jsonl`` (one JSON object per record) and TensorBoard.

Each record has ``step`` (training steps completed), ``kind`` ("train" or "eval") and its numbers.
On resume from a checkpoint taken after s steps, records after s are dropped from the JSONL file
and TensorBoard purges its events after s, so a resumed run's logs match a run that was never
interrupted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .policy import require


class MetricsLog:
    """Append-only metrics writer for one run (see the module docstring)."""

    def __init__(self, out_dir: str | Path, *, start_step: int = 0, tensorboard: bool = True):
        self.path = Path(out_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if start_step > 0 and self.path.is_file():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= start_step]
            self.path.write_text("".join(line + "\n" for line in kept))
        elif start_step == 0:
            self.path.write_text("")
        self.writer = None
        if tensorboard:
            require("tensorboard", "TensorBoard logging (log.tensorboard: true; set it to false to skip)")
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(out_dir) / "tensorboard"), purge_step=start_step + 1 if start_step else None)

    def write(self, step: int, kind: str, values: dict[str, float]) -> None:
        record = {"step": step, "kind": kind}
        record.update({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()})
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self.writer.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(out_dir: str | Path, kind: str | None = None) -> list[dict]:
    """The records of a run's ``metrics.jsonl`` (optionally only one kind)."""
    path = Path(out_dir) / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if kind is None or r["kind"] == kind]
