"""Provider contract and shared helpers. The kernel never imports a concrete provider."""

from legion_core.providers.base import Provider

__all__ = ["Provider"]
