"""Legion provider plugin for Anthropic's Messages API (`type: anthropic`)."""

from legion_llm_anthropic.provider import AnthropicProvider

__all__ = ["AnthropicProvider"]
__version__ = "0.1.0"
