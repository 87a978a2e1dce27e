"""How big each suite runs: ``full`` (the targets' configurations), ``quick`` (a couple of minutes
per suite) and ``tiny`` (seconds; the unit test's configuration)."""

from __future__ import annotations

from dataclasses import dataclass

SIZES = ("full", "quick", "tiny")


@dataclass(frozen=True)
class Size:
    name: str
    # foundation
    no_e_particles: int
    no_e_tokens: int
    paragraph_tokens: int
    record_tokens: int
    free_particles: int
    free_tokens: int
    repeats: int
    short_repeats: int  # the short constrained tasks (no-e sentence, JSON record): seconds each
    # scaling
    particle_grid: tuple[int, ...]
    particle_sweep_tokens: int
    length_grid: tuple[int, ...]
    length_sweep_particles: int
    budget_s: float
    # memory
    memory_prompt_tokens: int
    memory_particles: tuple[int, ...]
    memory_new_tokens: int


FULL = Size(
    "full", no_e_particles=8, no_e_tokens=40, paragraph_tokens=96, record_tokens=48, free_particles=16, free_tokens=64, repeats=3, short_repeats=25,
    particle_grid=(1, 2, 4, 8, 16, 32, 64, 128, 256), particle_sweep_tokens=32,
    length_grid=(16, 32, 64, 128, 256), length_sweep_particles=16, budget_s=240.0,
    memory_prompt_tokens=1024, memory_particles=(1, 2, 4, 8, 16, 32, 64), memory_new_tokens=32,
)
QUICK = Size(
    "quick", no_e_particles=4, no_e_tokens=16, paragraph_tokens=24, record_tokens=32, free_particles=8, free_tokens=16, repeats=1, short_repeats=1,
    particle_grid=(1, 4, 16), particle_sweep_tokens=8,
    length_grid=(8, 16), length_sweep_particles=4, budget_s=30.0,
    memory_prompt_tokens=1024, memory_particles=(1, 8), memory_new_tokens=8,
)
TINY = Size(
    "tiny", no_e_particles=2, no_e_tokens=3, paragraph_tokens=3, record_tokens=3, free_particles=2, free_tokens=3, repeats=1, short_repeats=1,
    particle_grid=(1, 2), particle_sweep_tokens=2,
    length_grid=(2, 4), length_sweep_particles=2, budget_s=30.0,
    memory_prompt_tokens=64, memory_particles=(1, 2), memory_new_tokens=2,
)


def get_size(name: str) -> Size:
    for size in (FULL, QUICK, TINY):
        if size.name == name:
            return size
    raise ValueError(f"unknown size {name!r}; choose one of {list(SIZES)}")
