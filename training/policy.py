"""`Policy`: the trainable follower (a transformers `TransformersLM`), its optional LoRA adapters
and the frozen reference copy.

The same object serves both sides: the engine samples from ``policy.lm`` (batched, under
``torch.inference_mode``), and the objectives compute teacher-forced log-probabilities on
``policy.model`` with gradients. Training changes the weights in place, so after every optimiser
step `Policy.after_update` drops the backend's cached prompt keys/values, which were computed
with the old weights.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from selfsteer.smc import LanguageModel, load_lm

from .config import LoraSettings, ModelSettings
from .logprobs import completion_logprobs
from .rollout import Sample
from .schema import ConfigError


class MissingPackage(ImportError):
    """An optional package is needed; the message names the pip command."""


def require(package: str, purpose: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise MissingPackage(f"{purpose} needs the package {package}: pip install {package}")


@dataclass
class Policy:
    """The follower being trained (see the module docstring)."""

    lm: Any  # TransformersLM
    reference: torch.nn.Module | None = None  # frozen copy of the starting weights (KL, PILAF, meta)
    peft_model: Any = None  # the PeftModel wrapper when training LoRA adapters
    temperature: float = 1.0

    @property
    def model(self) -> torch.nn.Module:
        return self.lm.model

    @property
    def pad_id(self) -> int:
        return int(self.lm.pad_id)

    def trainable(self) -> dict[str, torch.nn.Parameter]:
        """Named parameters that receive gradients (all of them, or only the LoRA adapters)."""
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def logprobs(self, samples: Sequence[Sample], model: torch.nn.Module | None = None) -> torch.Tensor:
        """Teacher-forced (N, T) log-probabilities of the samples' completions (with gradients)."""
        return completion_logprobs(
            model or self.model, [s.prompt_ids for s in samples], [s.token_ids for s in samples],
            temperature=self.temperature, restrictions=[s.restrictions for s in samples], pad_id=self.pad_id,
        )

    def reference_logprobs(self, samples: Sequence[Sample]) -> torch.Tensor:
        """The same under the frozen reference (no gradients)."""
        if self.reference is None:
            raise RuntimeError("this policy was built without a reference model (need_reference=False)")
        with torch.no_grad():
            return self.logprobs(samples, self.reference)

    def after_update(self) -> None:
        """Forget KV computed with the previous weights (call after each optimiser step)."""
        self.lm.prompt_cache.clear()

    def export(self, directory) -> None:
        """Save the trained model with its tokenizer to ``directory`` (a directory ``load_lm`` opens).

        For LoRA runs the adapters are merged into a copy of the weights, and the adapter alone is
        also saved in ``directory/adapter`` (load it with ``peft.PeftModel.from_pretrained``).
        """
        directory = Path(directory)
        if self.peft_model is None:
            self.model.save_pretrained(directory)
        else:
            self.peft_model.save_pretrained(directory / "adapter")
            copy.deepcopy(self.peft_model).merge_and_unload().save_pretrained(directory)
        self.lm.tokenizer.save_pretrained(directory)


def check_trainable_lm(lm: LanguageModel) -> None:
    if not hasattr(lm, "model") or not hasattr(lm, "tokenizer") or not hasattr(lm, "prompt_cache"):
        raise TypeError(
            f"training needs a transformers model (load_lm(..., backend='transformers')); got {type(lm).__name__}, "
            "whose weights cannot be trained"
        )


def add_lora(model: torch.nn.Module, settings: LoraSettings, seed: int):
    """Wrap ``model`` with LoRA adapters (in place); returns the PeftModel."""
    require("peft", "LoRA training (model.lora)")
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in settings.target_modules if m not in present]
    if missing:
        raise ConfigError(
            f"model.lora.target_modules: {missing} are not modules of this model; some that are: "
            f"{sorted(n for n in present if n.endswith('proj'))[:8]}"
        )
    torch.manual_seed(seed)  # adapter initialisation is part of the seeded run
    n_layers = getattr(model.config, "num_hidden_layers", None)
    layers = list(settings.layers) if settings.layers is not None else None
    if layers is not None and n_layers is not None and any(not -n_layers <= i < n_layers for i in layers):
        raise ConfigError(f"model.lora.layers: {layers} has indices outside the model's {n_layers} layers")
    if layers is not None and n_layers is not None:
        layers = sorted({i % n_layers for i in layers})  # -1 is the top layer
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=list(settings.target_modules), layers_to_transform=layers,
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def wrap_policy(
    lm: LanguageModel, *, lora: LoraSettings | None = None, need_reference: bool = False,
    temperature: float = 1.0, seed: int = 0,
) -> Policy:
    """A `Policy` around an already loaded transformers LM (the Python API)."""
    check_trainable_lm(lm)
    model = lm.model
    reference = None
    if need_reference:
        reference = copy.deepcopy(model).eval()
        reference.requires_grad_(False)
    peft_model = add_lora(model, lora, seed) if lora is not None else None
    if peft_model is None:
        model.requires_grad_(True)
    model.eval()  # no dropout: a seeded run is reproducible bit for bit
    return Policy(lm, reference, peft_model, temperature)


def load_policy(settings: ModelSettings, *, need_reference: bool, temperature: float, seed: int) -> Policy:
    """Load the follower named in ``settings`` on the transformers backend and wrap it."""
    lm = load_lm(settings.name, backend="transformers", device=settings.device, dtype=settings.dtype)
    return wrap_policy(lm, lora=settings.lora, need_reference=need_reference, temperature=temperature, seed=seed)
