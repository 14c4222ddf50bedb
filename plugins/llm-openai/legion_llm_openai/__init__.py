"""Legion provider plugin for the OpenAI API (`type: openai`)."""

from legion_llm_openai.provider import OpenAIProvider

__all__ = ["OpenAIProvider"]
__version__ = "0.1.0"
