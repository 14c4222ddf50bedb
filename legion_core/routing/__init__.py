"""Routing: from a request to an explained, ordered list of (provider, model) candidates.

`estimate_complexity` is the default per-request signal (the `legion_core.builtin.complexity`
plugin implements `legion_request_signals` with it). `Router`, `HealthTracker` and
`DiscoveryService` live in their own modules and are imported from there by the lifecycle.
"""

from legion_core.routing.complexity import estimate_complexity

__all__ = ["estimate_complexity"]
