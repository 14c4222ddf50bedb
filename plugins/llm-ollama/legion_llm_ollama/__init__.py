"""Legion provider plugin for Ollama's native API (`type: ollama`)."""

from legion_llm_ollama.provider import OllamaProvider

__all__ = ["OllamaProvider"]
__version__ = "0.1.0"
