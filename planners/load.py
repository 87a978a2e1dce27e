"""`load_planner`: a planner from a short name, or from the environment.

- ``"library"``: the offline `LibraryPlanner` (hand-written programs; no LM needed).
- ``"openai"`` or ``"openai:MODEL"``: an OpenAI-compatible endpoint (hosted, vLLM, llama.cpp,
  ollama); URL, model and key from the arguments or ``SELFSTEER_PLANNER_URL``,
  ``SELFSTEER_PLANNER_MODEL``, ``SELFSTEER_PLANNER_KEY`` (see `openai_client`).
- ``"qwen-coder"``: the offline Qwen2.5-Coder-1.5B-Instruct through the smc LM layer (download it
  first with ``selfsteer planner download qwen-coder`` or ``download=True``).
- ``"local:PATH"``: any model `load_lm` can load (a GGUF file or a Hugging Face directory).
- ``None``: the name in ``SELFSTEER_PLANNER``, else ``"openai"`` when ``SELFSTEER_PLANNER_MODEL``
  is set, else ``"library"``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .examples import Example
from .lm_planner import LMPlanner
from .plan import Planner

PLANNER_NAMES = ("library", "openai", "openai:MODEL", "qwen-coder", "local:PATH")


def default_planner_name() -> str:
    if os.environ.get("SELFSTEER_PLANNER"):
        return os.environ["SELFSTEER_PLANNER"]
    return "openai" if os.environ.get("SELFSTEER_PLANNER_MODEL") else "library"


def load_planner(
    name: str | Planner | None = None,
    *,
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    download: bool = False,
    exclude_family: str | None = None,
    examples: Sequence[Example] | None = None,
    **options: Any,
) -> Planner:
    """A planner by name (see the module docstring); a `Planner` object is returned as it is.

    ``exclude_family`` leaves that family out of an LM planner's few-shot examples and
    ``examples`` replaces them; ``options`` go to the chat client (`OpenAIChat` or `LocalChat`).
    """
    if name is not None and not isinstance(name, str):
        return name
    name = name or default_planner_name()
    fewshot = dict(exclude_family=exclude_family, examples=examples)
    if name == "library":
        try:
            from .library import LibraryPlanner
        except ImportError as e:
            raise ImportError(f"the library planner is not available ({e}); configure a planner LM with "
                              "--planner openai (see `selfsteer solve --help`)") from e
        return LibraryPlanner()
    if name == "openai" or name.startswith("openai:"):
        from .openai_client import OpenAIChat

        chat = OpenAIChat.from_env(base_url=base_url, model=model or name.partition(":")[2] or None,
                                   api_key=api_key, **options)
        return LMPlanner(chat, name=f"openai:{chat.model}@{chat.base_url}", **fewshot)
    if name == "qwen-coder":
        from .local import qwen_coder_chat

        return LMPlanner(qwen_coder_chat(download=download, **options), name="qwen-coder", compact=True, **fewshot)
    if name.startswith("local:"):
        from selfsteer.smc import load_lm

        from .local import LocalChat

        path = name.partition(":")[2]
        return LMPlanner(LocalChat(load_lm(path), **options), name=name, **fewshot)
    raise ValueError(f"unknown planner {name!r}; choose one of {', '.join(PLANNER_NAMES)}")
