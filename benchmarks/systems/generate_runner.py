"""Plain batched ``model.generate`` (Hugging Face): ancestral sampling of ``n_particles`` sequences.

This is the hardware limit for the work: no weights, no resampling, no constraint. The prompt is
prefilled once per sequence (``num_return_sequences`` copies it), and sampling is pure
(temperature 1, no top-k/top-p). The free task forbids EOS with ``min_new_tokens``; the constrained
tasks run unconstrained, ending at EOS, the budget or (for a sentence) sentence-final punctuation
(``stop_strings``), so their valid share shows what the constraint costs a sampler that ignores it.
"""

from __future__ import annotations

import torch

from ..tasks import SENTENCE_END, Task
from .base import Outcome, Runner


class GenerateRunner(Runner):
    name = "generate"

    def prepare(self, task: Task, seed: int):
        from transformers import GenerationConfig

        shared = self.shared
        model, tok = shared.model, shared.tokenizer
        prompt = torch.tensor([shared.chat_ids(task.prompt)], device=model.device)
        eos = shared.eos_ids
        config = GenerationConfig(
            do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
            max_new_tokens=task.max_tokens, min_new_tokens=0 if task.allows_eos else task.max_tokens,
            num_return_sequences=task.n_particles, eos_token_id=eos, pad_token_id=eos[0],
            stop_strings=list(SENTENCE_END) if task.ends_at_sentence else None,
        )
        eos_set = set(eos)

        def job() -> Outcome:
            torch.manual_seed(seed)
            with torch.inference_mode():
                out = model.generate(
                    prompt, attention_mask=torch.ones_like(prompt), generation_config=config, tokenizer=tok
                )
            texts, n_tokens = [], 0
            for row in out[:, prompt.shape[1]:].tolist():
                n = next((i for i, t in enumerate(row) if t in eos_set), len(row))
                n_tokens += n
                texts.append(tok.decode(row[:n], skip_special_tokens=True))
            return Outcome(texts, [True] * len(texts), n_tokens)

        return job
