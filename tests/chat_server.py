"""The scripted OpenAI-compatible chat server lives in `benchmarks.chat_server` (the planner
benchmark replays recorded completions through it too)."""

from benchmarks.chat_server import ScriptedChatServer

__all__ = ["ScriptedChatServer"]
