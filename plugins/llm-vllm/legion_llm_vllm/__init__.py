"""Legion provider plugin for vLLM and other OpenAI-compatible servers (`type: vllm`)."""

from legion_llm_vllm.provider import VLLMProvider

__all__ = ["VLLMProvider"]
__version__ = "0.1.0"
