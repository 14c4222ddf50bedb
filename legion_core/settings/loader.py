"""Load settings: layers deep-merged, validated by pydantic, with the source of every value.

Layers, lowest first:

1. kernel defaults (the pydantic defaults in `legion_core.settings.models`);
2. plugin defaults (`legion_settings_defaults`), when a plugin manager is given;
3. ``<home>/settings/*.json``, deep-merged in sorted filename order;
4. environment overrides: ``LEGION__LLM__ROUTING__STRATEGY=latency_optimized`` (``__`` nests;
   the value is parsed as JSON when it parses, else taken as a string);
5. ``override`` (tests and embedding applications).

Objects merge key by key; any other value (arrays included) replaces what is below it.
Every error names where the bad value came from (a file, ``env:VAR``, ``default:<plugin>``,
``override``), the dotted key path, the value's type and what was expected. Secret values
are never echoed: only types for secret-looking keys.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from legion_core.errors import SettingsError
from legion_core.log import get_logger, redact, scrub
from legion_core.settings.models import Settings

if TYPE_CHECKING:
    from legion_core.plugins.manager import PluginManager

log = get_logger("legion.settings")

ENV_PREFIX = "LEGION__"
DEFAULT = "default"
OVERRIDE = "override"
Parts = tuple[str | int, ...]

_IDENT = re.compile(r"^[A-Za-z0-9_\-]+$")
#: Key names whose values are secrets (or references to them): never echoed in errors or views.
SECRET_KEY_RE = re.compile(
    r"(?:^|[_\-])(?:api[_\-]?keys?|secrets?|tokens?|passw(?:or)?ds?|passphrase|bearer|credentials?"
    r"|private[_\-]?key|access[_\-]?key|authorization|auth[_\-]?header)(?:$|[_\-])", re.I)


_WARNED: set[tuple[str, ...]] = set()


def _warn_once(event: str, **fields: Any) -> None:
    """A boot loads settings twice (before and after plugins) and the CLI once more: say each
    thing about the same file and key once per process."""
    key = (event, *(f"{k}={v}" for k, v in sorted(fields.items())))
    if key in _WARNED:
        return
    _WARNED.add(key)
    log.warning(event, **fields)


# ------------------------------------------------------------------ result
@dataclass
class LoadedSettings:
    settings: Settings
    #: Dotted key path -> where its value came from ("default", a file path, "env:VAR", ...).
    provenance: dict[str, str]
    #: The settings files read, in merge order.
    files: list[Path] = field(default_factory=list)
    #: The merged document before validation (without kernel defaults).
    raw: dict[str, Any] = field(default_factory=dict)
    #: Plugin sections validated against their registered models.
    sections: dict[str, BaseModel] = field(default_factory=dict)

    def source(self, key: str | Parts) -> str:
        """Where the value at `key` came from (a dotted path or a tuple of parts)."""
        parts = parse_path(key) if isinstance(key, str) else key
        return _Provenance(self.provenance).source_for(parts)


# ------------------------------------------------------------------ paths
@functools.lru_cache(maxsize=8192)
def path_str(parts: Parts) -> str:
    """``("llm", "routing", "rules", 0, "priority")`` -> ``llm.routing.rules[0].priority``.

    Keys that are not plain identifiers (model ids like ``gpt-4.1``) are quoted:
    ``llm.pricing["gpt-4.1"].input``.
    """
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif _IDENT.match(p):
            out += ("." if out else "") + p
        else:
            out += f"[{json.dumps(p)}]"
    return out


_PATH_TOKEN = re.compile(r'\.?([A-Za-z0-9_\-]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def parse_path(text: str) -> Parts:
    """The inverse of `path_str`."""
    parts: list[str | int] = []
    pos = 0
    while pos < len(text):
        m = _PATH_TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"not a settings key path: {text!r}")
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(2) is not None:
            parts.append(int(m.group(2)))
        else:
            parts.append(json.loads(m.group(3)))
        pos = m.end()
    return tuple(parts)


def leaves(obj: Any, parts: Parts = ()) -> list[tuple[Parts, Any]]:
    """Flatten to (parts, value): scalars, empty containers and arrays of scalars are leaves."""
    out: list[tuple[Parts, Any]] = []
    _leaves(obj, parts, out)
    return out


def _leaves(obj: Any, parts: Parts, out: list[tuple[Parts, Any]]) -> None:
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            _leaves(v, parts + (k,), out)
    elif isinstance(obj, list | tuple) and obj and any(isinstance(v, dict | list | tuple) for v in obj):
        for i, v in enumerate(obj):
            _leaves(v, parts + (i,), out)
    else:
        out.append((parts, list(obj) if isinstance(obj, tuple) else obj))


# ------------------------------------------------------------------ provenance
class _Provenance:
    def __init__(self, data: dict[str, str] | None = None) -> None:
        self.data: dict[str, str] = data if data is not None else {}
        self.rank: dict[str, int] = {}

    def forget(self, parts: Parts) -> None:
        p = path_str(parts)
        for k in [k for k in self.data if k == p or k.startswith(p + ".") or k.startswith(p + "[")]:
            del self.data[k]

    def record(self, parts: Parts, value: Any, source: str) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                self.record(parts + (k,), v, source)
            return
        self.data[path_str(parts)] = source
        if isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, dict | list):
                    self.record(parts + (i,), v, source)

    def source_for(self, parts: Parts) -> str:
        """Exact match, else the nearest recorded ancestor, else the highest-ranked descendant."""
        for i in range(len(parts), 0, -1):
            s = self.data.get(path_str(parts[:i]))
            if s is not None:
                return s
        p = path_str(parts)
        below = [v for k, v in self.data.items()
                 if not p or k.startswith(p + ".") or k.startswith(p + "[")]
        if below:
            return max(below, key=lambda s: self.rank.get(s, 0))
        return DEFAULT


def _merge(dst: dict[str, Any], src: dict[str, Any], source: str, prov: _Provenance,
           prefix: Parts = ()) -> None:
    for k, v in src.items():
        parts = prefix + (k,)
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v, source, prov, parts)
            if not v and not dst[k]:
                prov.record(parts, v, source)
            continue
        prov.forget(parts)
        dst[k] = copy.deepcopy(v)
        prov.record(parts, v, source)


def _normalize(layer: dict[str, Any]) -> dict[str, Any]:
    """Expand shorthands so they merge like the long form (`"routing": "x"`)."""
    llm = layer.get("llm")
    if isinstance(llm, dict) and isinstance(llm.get("routing"), str):
        layer = dict(layer)
        layer["llm"] = {**llm, "routing": {"strategy": llm["routing"]}}
    return layer


# ------------------------------------------------------------------ layers
def strip_comments(text: str) -> str:
    """Blank out `//` comments outside strings (JSONC, as `legion init` writes), keeping every
    other character in place so error lines and columns still point into the file."""
    if "//" not in text:
        return text
    out: list[str] = []
    i, n, in_str = 0, len(text), False
    while i < n:
        ch = text[i]
        if in_str:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
            out.append(ch)
        elif ch == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end == -1 else end
            out.append(" " * (end - i))
            i = end
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")  # tolerate a BOM from Windows editors
    except UnicodeDecodeError as e:
        raise SettingsError(f"not UTF-8 text (byte {e.start})", file=str(path)) from None
    except OSError as e:
        raise SettingsError(f"cannot read the file: {e.strerror}", file=str(path)) from None
    text = strip_comments(text)
    if not text.strip():
        return {}
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for k, _ in items:
            if k in seen:
                duplicates.append(k)
            seen.add(k)
        return dict(items)

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as e:
        raise SettingsError(f"malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}",
                            file=str(path)) from None
    for k in dict.fromkeys(duplicates):
        _warn_once("duplicate key in a settings file; the last one wins", file=str(path), key=k)
    if not isinstance(data, dict):
        raise SettingsError("a settings file must hold one JSON object", file=str(path),
                            got=_json_type(data), expected="an object, e.g. {\"llm\": {...}}")
    return data


def settings_files(home: Path) -> list[Path]:
    d = Path(home) / "settings"
    if not d.is_dir():
        return []
    return sorted((p for p in d.glob("*.json") if p.is_file() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def _env_key(key: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", key.lower())


def _match_segments(segs: list[str], below: dict[str, Any]) -> list[str]:
    """Map env segments onto existing keys: `GPU_BOX` addresses `providers["gpu-box"]`,
    `GPT_4_1` addresses `pricing["gpt-4.1"]` (a variable name cannot hold `-` or `.`)."""
    out: list[str] = []
    node: Any = below
    for seg in segs:
        key = seg
        if isinstance(node, dict) and seg not in node:
            key = next((k for k in node if isinstance(k, str) and _env_key(k) == seg), seg)
        out.append(key)
        node = node.get(key) if isinstance(node, dict) else None
    return out


def _env_layer(environ: typing.Mapping[str, str], below: dict[str, Any]
               ) -> tuple[list[tuple[str, dict[str, Any]]], dict[Parts, str]]:
    """One layer per variable (sorted), and the raw strings (for the re-try as a string)."""
    layers: list[tuple[str, dict[str, Any]]] = []
    raw_strings: dict[Parts, str] = {}
    for var in sorted(environ):
        if not var.upper().startswith(ENV_PREFIX) or len(var) == len(ENV_PREFIX):
            continue
        segs = var[len(ENV_PREFIX):].lower().split("__")
        if any(not s for s in segs):
            raise SettingsError("empty key segment in an environment override (use a double "
                                "underscore only between keys)", file=f"env:{var}",
                                expected="LEGION__SECTION__KEY=value, e.g. "
                                         "LEGION__LLM__ROUTING__STRATEGY=latency_optimized")
        segs = _match_segments(segs, below)
        text = environ[var]
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        doc: dict[str, Any] = {}
        node = doc
        for s in segs[:-1]:
            node = node.setdefault(s, {})
        node[segs[-1]] = value
        layers.append((f"env:{var}", doc))
        if not isinstance(value, str):
            raw_strings[tuple(segs)] = text
    return layers, raw_strings


def each_impl(plugins: PluginManager, hook_name: str, **kwargs: Any
              ) -> typing.Iterator[tuple[str, Any]]:
    """Call one hook plugin by plugin, yielding (plugin name, result).

    A plugin that raises is skipped with a warning naming it, so one broken plugin cannot
    take the settings (or the CLI) down; `LEGION_STRICT_PLUGINS=1` makes that fatal.
    Implementations come in pluggy's reverse call order: `tryfirst` ones last, so they win
    a merge.
    """
    from legion_core.errors import PluginError

    caller = getattr(plugins.pm.hook, hook_name)
    for impl in caller.get_hookimpls():
        if impl.hookwrapper or getattr(impl, "wrapper", False):
            continue
        rec = plugins.records.get(impl.plugin_name)
        name = (rec.distribution if rec and rec.distribution else None) or impl.plugin_name
        try:
            result = impl.function(*[kwargs[a] for a in impl.argnames])
        except Exception as e:  # noqa: BLE001 - any failure is the plugin's
            reason = f"{type(e).__name__}: {scrub(str(e))}"
            if os.environ.get("LEGION_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes", "on"}:
                raise PluginError(f"plugin {name!r} failed in {hook_name}: {reason}") from e
            log.warning("plugin hook failed; ignoring this plugin's answer", plugin=name,
                        hook=hook_name, error=reason)
            continue
        yield name, result


def _plugin_defaults(plugins: PluginManager) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for name, doc in each_impl(plugins, "legion_settings_defaults"):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            log.warning("plugin settings defaults are not an object; ignored", plugin=name,
                        got=_json_type(doc))
            continue
        out.append((f"default:{name}", doc))
    return out


def _plugin_schemas(plugins: PluginManager) -> dict[str, type[BaseModel]]:
    schemas: dict[str, type[BaseModel]] = {}

    def register(section: str, model: type[BaseModel]) -> None:
        if section in Settings.model_fields:
            log.warning("a plugin registered a schema for a kernel section; ignored", section=section)
            return
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            log.warning("a plugin registered a settings schema that is not a pydantic model; ignored",
                        section=section)
            return
        schemas[section] = model

    for _ in each_impl(plugins, "legion_settings_schema", register=register):
        pass
    return schemas


# ------------------------------------------------------------------ entry point
def load_settings(home: Path | str, *, override: Settings | dict[str, Any] | None = None,
                  plugins: PluginManager | None = None,
                  environ: typing.Mapping[str, str] | None = None) -> LoadedSettings:
    """Merge every layer, validate, and return the settings with their provenance.

    :raises SettingsError: naming the source, the key path, the value's type and what was
        expected.
    """
    environ = os.environ if environ is None else environ
    prov = _Provenance()
    raw: dict[str, Any] = {}
    layers: list[tuple[str, dict[str, Any]]] = []
    schemas: dict[str, type[BaseModel]] = {}
    if plugins is not None:
        layers += _plugin_defaults(plugins)
        schemas = _plugin_schemas(plugins)
    files = settings_files(Path(home))
    for p in files:
        doc = _read_file(p)
        _check_file_exposure(p, doc)
        layers.append((str(p), doc))
    _merge_layers(raw, layers, prov)
    env_layers, env_strings = _env_layer(environ, raw)
    layers = env_layers
    if override is not None:
        doc = (override.model_dump(exclude_unset=True) if isinstance(override, BaseModel)
               else override)
        if not isinstance(doc, dict):
            raise SettingsError("override must be a Settings object or a dict", file=OVERRIDE,
                                got=type(doc).__name__, expected="Settings or dict")
        layers.append((OVERRIDE, doc))
    _merge_layers(raw, layers, prov)

    _remember_literal_secrets(raw)
    _check_sections(raw, prov, schemas)
    settings = _validate(Settings, raw, prov, env_strings)
    sections: dict[str, BaseModel] = {}
    for name, model in schemas.items():
        sec = raw.get(name, {})
        sections[name] = _validate(model, sec, prov, env_strings, base=(name,))
    _warn_option_typos(settings, prov)
    provenance = _complete(settings, raw, prov)
    return LoadedSettings(settings=settings, provenance=provenance, files=files, raw=raw,
                          sections=sections)


#: Provider options people write meaning a kernel key.
_OPTION_ALIASES = {"model": "default_model", "url": "base_url", "endpoint": "base_url",
                   "key": "api_key", "apikey": "api_key", "api-key": "api_key"}


def _warn_option_typos(settings: Settings, prov: _Provenance) -> None:
    """Provider maps accept any option (`region`...), so a misspelt known key would pass
    silently; warn when an option is a near miss of one."""
    from legion_core.settings.models import ProviderSettings

    known = [k for k in ProviderSettings.model_fields if len(k) > 3]
    for name, ps in settings.llm.providers.items():
        for opt in ps.extra_options():
            close = ([_OPTION_ALIASES[opt]] if opt in _OPTION_ALIASES else
                     difflib.get_close_matches(opt, known, n=1, cutoff=0.8))
            if close:
                parts = ("llm", "providers", name, opt)
                source = prov.source_for(parts)
                line = _line_in(source, parts)
                _warn_once("provider option looks like a misspelt setting; passed to the provider "
                            "as is", key=path_str(parts), did_you_mean=close[0],
                            file=f"{source}:{line}" if line else source)


def _merge_layers(raw: dict[str, Any], layers: list[tuple[str, dict[str, Any]]],
                  prov: _Provenance) -> None:
    for source, doc in layers:
        prov.rank[source] = len(prov.rank) + 1
        _merge(raw, _normalize(doc), source, prov)


def _literal_secret_keys(doc: dict[str, Any]) -> list[str]:
    from legion_core.secrets import URL_SCHEMES, parse_ref

    found = []
    for parts, value in leaves(doc):
        if not _is_secret_path(parts):
            continue
        for v in value if isinstance(value, list) else [value]:
            ref = parse_ref(v) if isinstance(v, str) else None
            if isinstance(v, str) and v and (ref is None or ref[0] in URL_SCHEMES):
                found.append(path_str(parts))
                break
    return found


def _check_file_exposure(path: Path, doc: dict[str, Any]) -> None:
    """Like ssh with a private key: a literal secret in a file other users can read is worth
    a warning (naming the keys, never the values)."""
    if os.name != "posix":
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if not mode & 0o077:
        return
    keys = _literal_secret_keys(doc)
    if keys:
        _warn_once("settings file holds a literal secret and other users can read it; "
                    "chmod 600 it or use a reference (env://, vault://)", file=str(path),
                    mode=oct(mode & 0o777), key=", ".join(keys))


def _remember_literal_secrets(raw: dict[str, Any]) -> None:
    """A literal under a secret-looking key is a secret: mask it wherever it might be printed."""
    from legion_core.secrets import parse_ref

    for parts, value in leaves(raw):
        if not _is_secret_path(parts):
            continue
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and parse_ref(v) is None:
                redact(v)


def _check_sections(raw: dict[str, Any], prov: _Provenance,
                    schemas: dict[str, type[BaseModel]]) -> None:
    """Top-level typos (`lmm`, `budgte`) are errors; other unknown sections belong to plugins."""
    known = [*Settings.model_fields, *schemas]
    for key in raw:
        if key in known:
            continue
        # Only near-certain typos: a plugin may legitimately own a section with a similar name.
        close = [k for k in known if _typo_distance(key, k) <= (2 if len(k) >= 8 else 1)]
        if close:
            raise _located(f"unknown section '{key}'; did you mean '{close[0]}'?",
                           file=prov.source_for((key,)), key=key, parts=(key,), got=None,
                           expected=None)


def _typo_distance(a: str, b: str) -> int:
    """Edit distance counting a swap of neighbours as one edit (optimal string alignment)."""
    a, b = a.lower(), b.lower()
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def _validate(model: type[BaseModel], data: Any, prov: _Provenance, env_strings: dict[Parts, str],
              base: Parts = ()) -> Any:
    copied = False
    for _ in range(20):
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            # An env value that parsed as JSON (`4`, `true`) may have been meant as a string.
            retried = False
            for err in exc.errors():
                parts = _clean_loc(tuple(err["loc"]), data, err["type"])
                full = base + parts
                if full in env_strings and prov.source_for(full).startswith("env:"):
                    if not copied:
                        data, copied = copy.deepcopy(data), True
                    _set(data, parts, env_strings.pop(full))
                    retried = True
            if not retried:
                raise _to_settings_error(exc, data, prov, model, base) from None
    raise AssertionError("unreachable")


def _set(data: Any, parts: Parts, value: Any) -> None:
    node = data
    for p in parts[:-1]:
        node = node[p]
    node[parts[-1]] = value


def _complete(settings: Settings, raw: dict[str, Any], prov: _Provenance) -> dict[str, str]:
    """Provenance for every effective leaf: the layer that set it, else "default"."""
    # Seed shape 1 (llm.provider + llm.api_key) builds llm.providers.<name>: credit its sources.
    llm_raw: dict[str, Any] = raw["llm"] if isinstance(raw.get("llm"), dict) else {}
    name = settings.llm.provider
    derived: dict[str, str] = {}
    if name and name not in (llm_raw.get("providers") or {}):
        for sub, src in (("type", "provider"), ("enabled", "provider"), ("api_key", "api_key"),
                         ("default_model", "model"), ("base_url", "base_url")):
            if src in llm_raw:
                derived[path_str(("llm", "providers", name, sub))] = prov.source_for(("llm", src))
    out: dict[str, str] = {}
    dumped = settings.model_dump(mode="json")
    for parts, _ in leaves(dumped):
        key = path_str(parts)
        out[key] = derived.get(key) or _own_source(prov, parts)
    for k, v in prov.data.items():
        out.setdefault(k, v)
    return out


def _own_source(prov: _Provenance, parts: Parts) -> str:
    for i in range(len(parts), 0, -1):
        s = prov.data.get(path_str(parts[:i]))
        if s is not None:
            return s
    return DEFAULT


# ------------------------------------------------------------------ line numbers
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')


def key_lines(text: str) -> dict[Parts, int]:
    """The line on which each key (or array element) of a valid JSON document starts."""
    lines: dict[Parts, int] = {}
    stack: list[dict[str, Any]] = []
    line, last = 1, 0
    for m in _JSON_TOKEN.finditer(text):
        line += text.count("\n", last, m.start())
        last = m.start()
        tok = m.group()
        top = stack[-1] if stack else None
        if top is not None and top["obj"] and top["expect_key"] and tok.startswith('"'):
            top.update(key=json.loads(tok), key_line=line, expect_key=False)
            continue
        if tok == ":":
            continue
        if tok == ",":
            if top is not None:
                if top["obj"]:
                    top["expect_key"] = True
                else:
                    top["index"] += 1
            continue
        if tok in ("}", "]"):
            if stack:
                stack.pop()
            continue
        vpath: Parts = ()
        if top is not None and top["obj"]:
            vpath = top["path"] + (top["key"],)
            lines[vpath] = top["key_line"]
        elif top is not None:
            vpath = top["path"] + (top["index"],)
            lines[vpath] = line
        if tok == "{":
            stack.append({"obj": True, "path": vpath, "expect_key": True})
        elif tok == "[":
            stack.append({"obj": False, "path": vpath, "index": 0})
    return lines


def _line_in(source: str, parts: Parts) -> int | None:
    """The line of `parts` (or its nearest ancestor) in the settings file `source`, if a file."""
    if not source.endswith(".json"):
        return None
    try:
        found = key_lines(strip_comments(Path(source).read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError):
        return None
    for i in range(len(parts), 0, -1):
        if parts[:i] in found:
            return found[parts[:i]]
    return None


def _located(message: str, *, file: str, key: str, parts: Parts, got: str | None,
             expected: str | None) -> SettingsError:
    err = SettingsError(message, file=file, key=key, got=got, expected=expected)
    line = _line_in(file, parts)
    if line:  # `file:line:` as compilers print it, so editors can jump there
        err.message = err.message.replace(f"{file}: ", f"{file}:{line}: ", 1)
        err.args = (err.message,)
    err.line = line  # type: ignore[attr-defined]
    return err


# ------------------------------------------------------------------ error messages
def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list | tuple):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _is_secret_path(parts: Parts) -> bool:
    return any(isinstance(p, str) and SECRET_KEY_RE.search(p) for p in parts)


def _got(value: Any, parts: Parts) -> str:
    t = _json_type(value)
    if _is_secret_path(parts) or isinstance(value, dict | list | tuple):
        return t
    from legion_core.secrets import mask_userinfo

    text = mask_userinfo(scrub(json.dumps(value, default=str)))
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{t} {text}"


def _clean_loc(loc: Parts, data: Any, err_type: str) -> Parts:
    """Drop pydantic's union-member tags (`str`, `list[str]`...) by walking the data."""
    out: list[str | int] = []
    node = data
    for i, seg in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and seg in node:
            out.append(seg)
            node = node[seg]
        elif isinstance(node, list | tuple) and isinstance(seg, int) and 0 <= seg < len(node):
            out.append(seg)
            node = node[seg]
        elif last and err_type == "missing":
            out.append(seg)
    return tuple(out)


_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "a string", "list_type": "an array", "tuple_type": "an array",
    "dict_type": "an object", "model_type": "an object", "model_attributes_type": "an object",
    "none_required": "null",
    "datetime_type": 'an ISO 8601 date-time, e.g. "2026-01-31T09:00:00Z"',
    "datetime_parsing": 'an ISO 8601 date-time, e.g. "2026-01-31T09:00:00Z"',
    "datetime_from_date_parsing": 'an ISO 8601 date-time, e.g. "2026-01-31T09:00:00Z"',
}


def _expected(err: dict[str, Any]) -> str:
    t = err["type"]
    if t in _EXPECTED:
        return _EXPECTED[t]
    if t == "literal_error":
        return "one of " + str((err.get("ctx") or {}).get("expected", "")).replace("' or '", "', '")
    msg = str(err.get("msg", ""))
    for prefix in ("Input should be ", "Value error, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg


def _model_at(model: type[BaseModel], parts: Parts) -> type[BaseModel] | None:
    """The pydantic model that validates the object at `parts` (for "did you mean")."""
    cur: Any = model
    for p in parts:
        cur = _unwrap(cur)
        if isinstance(cur, type) and issubclass(cur, BaseModel):
            f = cur.model_fields.get(p) if isinstance(p, str) else None
            if f is None:
                return None
            cur = f.annotation
        elif typing.get_origin(cur) in (dict, list, tuple):
            args = typing.get_args(cur)
            cur = args[-1] if args else Any
        else:
            return None
    cur = _unwrap(cur)
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for a in typing.get_args(tp):
            if isinstance(a, type) and issubclass(a, BaseModel):
                return a
        return next((a for a in typing.get_args(tp) if a is not type(None)), tp)
    return tp


def _describe(err: dict[str, Any], parts: Parts, data: Any, model: type[BaseModel],
              prov: _Provenance, base: Parts) -> SettingsError:
    full = base + parts
    key = path_str(full)
    t = err["type"]
    if t == "extra_forbidden":
        name = str(parts[-1])
        parent = _model_at(model, parts[:-1])
        valid = sorted(parent.model_fields) if parent else []
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return _located(f"unknown key '{name}'{hint}", file=prov.source_for(full), key=key,
                        parts=full, got=f"an unknown key holding {_json_type(err.get('input'))}",
                        expected=("one of the keys " + ", ".join(valid)) if valid else
                        "no key by this name")
    if t == "missing":
        return _located("required key is missing", file=prov.source_for(full[:-1]), key=key,
                        parts=full[:-1], got="nothing", expected=_missing_expected(model, parts))
    return _located("invalid value", file=prov.source_for(full), key=key, parts=full,
                    got=_got(err.get("input"), full), expected=_expected(err))


def _missing_expected(model: type[BaseModel], parts: Parts) -> str:
    parent = _model_at(model, parts[:-1])
    f = parent.model_fields.get(str(parts[-1])) if parent else None
    if f is not None and f.annotation is not None:
        return f"a value for '{parts[-1]}' ({_type_name(f.annotation)})"
    return f"a value for '{parts[-1]}'"


def _type_name(tp: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _to_settings_error(exc: ValidationError, data: Any, prov: _Provenance, model: type[BaseModel],
                       base: Parts) -> SettingsError:
    groups: dict[Parts, list[dict[str, Any]]] = {}
    for err in exc.errors():
        parts = _clean_loc(tuple(err["loc"]), data, err["type"])
        groups.setdefault(parts, []).append(dict(err))
    # A union reports one error per member; keep the most specific path of each branch.
    paths = [p for p in groups if not any(q != p and q[:len(p)] == p for q in groups)]
    errors: list[SettingsError] = []
    for p in paths:
        errs = groups[p]
        if len(errs) > 1 and all(e["type"] not in ("extra_forbidden", "missing") for e in errs):
            expected = " or ".join(dict.fromkeys(_expected(e) for e in errs))
            errors.append(_located("invalid value", file=prov.source_for(base + p),
                                   key=path_str(base + p), parts=base + p,
                                   got=_got(errs[0].get("input"), base + p), expected=expected))
        else:
            errors.append(_describe(errs[0], p, data, model, prov, base))
    first = errors[0]
    if len(errors) > 1:
        first.message += "".join(f"\n  also: {e}" for e in errors[1:])
        first.args = (first.message,)
    first.errors = errors  # type: ignore[attr-defined]
    return first
