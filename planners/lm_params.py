"""Fill a library program's parameters with a language model, constrained to their JSON schema.

`lm_params(lm, spec, task)` shows the LM the program's example tasks with their parameters as
JSON, then the new task, and samples the parameters with SMC inside a `Regex` for compact JSON
objects holding the schema's required properties (or inside the full `JsonSchema` where the
schema needs more than such a regex can say). The result is validated against the schema; a
small LM may still choose values the task does not imply, so planners use this only as a
fallback after the rules (`planners.extract`).
"""

from __future__ import annotations

import json
from typing import Any

from selfsteer.programs.registry import ProgramSpec
from selfsteer.programs.structured import Unsupported, schema_regex
from selfsteer.smc import JsonSchema, LanguageModel, Regex, TextModel, smc

from .extract import ExtractionError

LOOSE = ("minimum", "maximum", "exclusiveMinimum", "default", "description", "minLength", "pattern", "minItems")


def required_only(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema's required properties, without bounds the regex cannot express (checked later)."""
    required = schema.get("required", [])
    props = {k: {kk: vv for kk, vv in v.items() if kk not in LOOSE} for k, v in schema["properties"].items() if k in required}
    return {"type": "object", "properties": props}


class ParamsWriter(TextModel):
    """Writes one JSON object of parameters after a few-shot prompt (one constrained token per step)."""

    def __init__(self, lm: LanguageModel, prompt: str, spec: Regex | JsonSchema, *, max_tokens: int = 96):
        super().__init__(lm, lm.encode(prompt), max_tokens=max_tokens)
        self.spec = spec

    async def step(self):
        span = await self.constrain_step(self.spec)
        if span.done:
            self.finish(span.text)


def few_shot_prompt(spec: ProgramSpec, task: str) -> str:
    lines = [f"Each task is followed by the parameters of the program '{spec.name}' ({spec.description}) as JSON.", ""]
    for example, params in spec.examples:
        lines += [f"Task: {example}", f"Parameters: {json.dumps(params)}", ""]
    lines += [f"Task: {task}", "Parameters: "]
    return "\n".join(lines)


def lm_params(lm: LanguageModel, spec: ProgramSpec, task: str, *, n_particles: int = 4, seed: int = 0) -> dict[str, Any]:
    """``spec``'s parameters for ``task`` written by ``lm`` (`ExtractionError` if none is valid)."""
    try:
        constraint: Regex | JsonSchema = Regex(schema_regex(required_only(spec.params_schema)))
    except Unsupported:
        constraint = JsonSchema(spec.params_schema)
    result = smc(ParamsWriter(lm, few_shot_prompt(spec, task).rstrip(" "), constraint), n_particles, seed=seed)
    for text in result.posterior:
        try:
            return spec.validate(json.loads(text))
        except ValueError:
            continue
    raise ExtractionError(f"the parameter LM wrote no valid parameters for {spec.name!r}")
