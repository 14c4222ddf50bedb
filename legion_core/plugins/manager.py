"""Loading plugins: entry points (group `legion`) plus the kernel's internal defaults.

Rules, learnt from tox, conda, llm and datasette:
- a plugin is blocked *before* its module is imported (`LEGION_DISABLE_PLUGINS`,
  `plugins.disabled`, or absent from the `LEGION_PLUGINS` allow-list);
- a plugin that raises on import or registration is recorded as failed, by name, and the
  rest keep working, unless `LEGION_STRICT_PLUGINS=1`;
- `check_pending()` runs after loading, so a misspelt hook name is an error, not silence;
- `LEGION_TRACE_PLUGINS=1` traces every hook call to stderr.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import importlib_metadata
import pluggy

from legion_core import hookspecs
from legion_core.errors import PluginError

ENTRY_POINT_GROUP = "legion"
Status = Literal["active", "blocked", "failed"]

#: Internal plugins, registered through the same manager as everyone else's.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "legion_core.builtin.complexity",
    "legion_core.builtin.quality",
    "legion_core.builtin.secrets",
)


@dataclass
class PluginRecord:
    name: str
    distribution: str | None
    version: str | None
    status: Status
    hooks: list[str] = field(default_factory=list)
    reason: str | None = None
    builtin: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "hooks": self.hooks,
            "reason": self.reason,
            "builtin": self.builtin,
        }


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return [p.strip() for p in raw.split(",") if p.strip()]


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def hookimpls(plugins: Any, hook_name: str) -> list[Any]:
    """A hook's implementations: cached by the kernel's `PluginManager` (the same list until a
    plugin is (un)registered), fetched afresh from anything else that exposes pluggy's `hook`."""
    cached = getattr(plugins, "hookimpls", None)
    return cached(hook_name) if cached is not None else getattr(plugins.hook, hook_name).get_hookimpls()


def call_order(plugins: Any, hook_name: str) -> list[Any] | None:
    """The hook's implementations in pluggy's call order (last registered first, `tryfirst`
    first), or None when pluggy must make the call itself: wrappers need its call loop, and
    `firstresult` hooks its early stop. Calling plain implementations straight from this list
    (`call_plain`) is pluggy's `_multicall` without its per-call machinery, which the hooks
    consulted on every request (guards, request signals) paid each time."""
    cached = getattr(plugins, "call_order", None)  # the kernel's PluginManager: one lookup
    return cached(hook_name) if cached is not None else _plain_order(plugins, hook_name)


def _plain_order(plugins: Any, hook_name: str) -> list[Any] | None:
    impls = hookimpls(plugins, hook_name)
    caller = getattr(plugins.hook, hook_name)
    special = bool(caller.spec and caller.spec.opts.get("firstresult")) or any(
        getattr(i, "wrapper", False) or getattr(i, "hookwrapper", False) for i in impls)
    return None if special else list(reversed(impls))


def call_plain(plugins: Any, hook_name: str, **kwargs: Any) -> list[Any]:
    """`plugins.hook.<hook_name>(**kwargs)`: the non-None results in call order (through pluggy
    when it must: wrappers, `firstresult`, `LEGION_TRACE_PLUGINS` monitoring)."""
    order = call_order(plugins, hook_name)
    if order is None or getattr(plugins, "_trace_undo", None) is not None:
        return list(getattr(plugins.hook, hook_name)(**kwargs))
    out = []
    for impl in order:
        r = impl.function(*[kwargs[a] for a in impl.argnames])
        if r is not None:
            out.append(r)
    return out


class PluginManager:
    """A typed facade over `pluggy.PluginManager`; `pm.hook` stays available for the kernel."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        #: Bumped on every (un)registration; `hookimpls()` caches on it.
        self.generation = 0
        self._impls: dict[str, tuple[int, list[Any]]] = {}
        #: hook -> (generation, its plain call order): see `call_order`.
        self._orders: dict[str, tuple[int, list[Any] | None]] = {}
        self.records: dict[str, PluginRecord] = {}
        self._trace_undo: Any = None
        if _truthy("LEGION_TRACE_PLUGINS"):
            self.enable_tracing()

    @property
    def hook(self) -> Any:
        return self.pm.hook

    # -------------------------------------------------------------- loading
    def load(self, disabled: Iterable[str] = (), *, builtins: bool = True,
             entry_points: bool = True) -> None:
        """Register built-ins, then entry points minus blocked ones, then check hook names."""
        strict = _truthy("LEGION_STRICT_PLUGINS")
        if builtins:
            for modname in BUILTIN_PLUGINS:
                self._register_module(modname, modname, None, None, builtin=True, strict=True)
        if entry_points:
            self._load_entry_points(set(disabled), strict)
        self.check_pending()

    def _load_entry_points(self, disabled: set[str], strict: bool) -> None:
        allow = _env_list("LEGION_PLUGINS")
        blocked = disabled | set(_env_list("LEGION_DISABLE_PLUGINS") or [])
        for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else None
            version = ep.dist.version if ep.dist else None
            names = {ep.name, dist or ""}
            if (allow is not None and not names & set(allow)) or names & blocked:
                why = "not in LEGION_PLUGINS" if allow is not None and not names & set(allow) else "disabled"
                self.records[ep.name] = PluginRecord(ep.name, dist, version, "blocked", reason=why)
                continue
            if ep.name in self.records and self.records[ep.name].status == "active":
                continue
            try:
                obj = ep.load()  # the import happens here, and only here
            except Exception as e:  # noqa: BLE001 - any import failure is the plugin's, not ours
                self._fail(ep.name, dist, version, e, strict)
                continue
            self._register_obj(obj, ep.name, dist, version, builtin=False, strict=strict)

    def _register_module(self, modname: str, name: str, dist: str | None, version: str | None,
                         *, builtin: bool, strict: bool) -> None:
        import importlib

        try:
            obj = importlib.import_module(modname)
        except Exception as e:  # noqa: BLE001
            self._fail(name, dist, version, e, strict)
            return
        self._register_obj(obj, name, dist, version, builtin=builtin, strict=strict)

    def _register_obj(self, obj: Any, name: str, dist: str | None, version: str | None, *,
                      builtin: bool, strict: bool) -> None:
        try:
            if self.pm.get_plugin(name) is None:
                self.pm.register(obj, name=name)
                self.generation += 1
        except Exception as e:  # noqa: BLE001 - e.g. a hookimpl with an unknown argument
            self._fail(name, dist, version, e, strict)
            return
        hooks = sorted(h.name for h in (self.pm.get_hookcallers(obj) or []))
        self.records[name] = PluginRecord(name, dist, version, "active", hooks=hooks, builtin=builtin)

    def _fail(self, name: str, dist: str | None, version: str | None, exc: BaseException,
              strict: bool) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        self.records[name] = PluginRecord(name, dist, version, "failed", reason=reason)
        from legion_core.log import get_logger

        get_logger("legion.plugins").warning(
            "plugin failed to load", plugin=name, distribution=dist, error=reason
        )
        if strict:
            raise PluginError(f"plugin {name!r} failed to load: {reason}") from exc

    def register(self, obj: Any, name: str | None = None) -> str:
        """Register an in-process plugin (tests, embedding applications)."""
        pname = self.pm.register(obj, name=name)
        assert pname is not None
        self.generation += 1
        hooks = sorted(h.name for h in (self.pm.get_hookcallers(obj) or []))
        self.records[pname] = PluginRecord(pname, None, None, "active", hooks=hooks)
        self.check_pending()
        return pname

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.generation += 1
        self.records.pop(name, None)

    def call_order(self, hook_name: str) -> list[Any] | None:
        """The module's `call_order`, cached until the next (un)registration: the router and the
        guards ask on every request."""
        hit = self._orders.get(hook_name)
        if hit is None or hit[0] != self.generation:
            hit = self._orders[hook_name] = (self.generation, _plain_order(self, hook_name))
        return hit[1]

    def hookimpls(self, hook_name: str) -> list[Any]:
        """`hook.<name>.get_hookimpls()`, cached until the next (un)registration: the pipeline and
        the router ask on every request (pluggy copies the list each time)."""
        hit = self._impls.get(hook_name)
        if hit is None or hit[0] != self.generation:
            hit = self._impls[hook_name] = (self.generation, getattr(self.pm.hook, hook_name).get_hookimpls())
        return hit[1]

    def check_pending(self) -> None:
        """Fail loudly on hookimpls that match no hookspec (a misspelt hook name)."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as e:
            raise PluginError(f"unknown hook implementation: {e}") from e

    # -------------------------------------------------------------- introspection
    def plugins(self, *, include_builtin: bool = False) -> list[PluginRecord]:
        recs = sorted(self.records.values(), key=lambda r: (r.builtin, r.name))
        return [r for r in recs if include_builtin or not r.builtin]

    def failed(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.status == "failed"]

    def enable_tracing(self) -> None:
        def before(hook_name: str, hook_impls: Any, kwargs: dict[str, Any]) -> None:
            names = ",".join(i.plugin_name for i in hook_impls)
            print(f"[legion trace] {hook_name} -> {names}", file=sys.stderr)

        def after(outcome: Any, hook_name: str, hook_impls: Any, kwargs: dict[str, Any]) -> None:
            exc = outcome.exception
            if exc is not None:
                print(f"[legion trace] {hook_name} raised {type(exc).__name__}", file=sys.stderr)

        self._trace_undo = self.pm.add_hookcall_monitoring(before, after)  # type: ignore[arg-type]


def format_exception(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
