"""Secret references, resolved once at boot.

A secret-bearing setting holds a *reference*, never (ideally) a value:

- ``env://NAME`` — an environment variable (unset or empty means "not set");
- ``vault://<mount>/<path>#<key>`` — HashiCorp Vault KV v2 over HTTP (``VAULT_ADDR``,
  ``VAULT_TOKEN``); one GET per path per process, then cached;
- a plain literal — used as is;
- a list — a fallback chain: the first entry that yields a non-empty value wins, and a hard
  failure (Vault down, 403) inside a chain falls through to the next entry with a warning.

Plugins add schemes (``file://``, ``aws-sm://``...) through the ``legion_secret_schemes`` hook;
``env`` and ``vault`` are registered the same way by `legion_core.builtin.secrets`.

Every value resolved here is passed to `legion_core.log.redact()`, so it is masked wherever
it would be logged. Errors and warnings name references, never values.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx

from legion_core.errors import SecretError
from legion_core.log import get_logger, redact

if TYPE_CHECKING:
    from legion_core.plugins.manager import PluginManager
    from legion_core.providers.base import Provider
    from legion_core.settings.models import ProviderSettings

log = get_logger("legion.secrets")

#: A scheme resolver gets the part after ``scheme://`` and returns the value, or None if unset.
SchemeResolver = Callable[[str], "str | None"]
SecretRef = str | list[str] | None

_REF_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://(.*)\Z", re.S)
_USERINFO_RE = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s]+@")
#: Ordinary URLs (a Redis URL in `llm.state.url`, an endpoint...): literals, unless a plugin
#: registers the scheme. Any other unregistered scheme is an error (a typo like ``evn://``).
URL_SCHEMES = frozenset({
    "http", "https", "ws", "wss", "tcp", "unix", "redis", "rediss", "valkey", "postgres",
    "postgresql", "mysql", "sqlite", "mongodb", "mongodb+srv", "amqp", "amqps", "nats",
})
DEFAULT_VAULT_TIMEOUT = 3.0


# ------------------------------------------------------------------ references
def parse_ref(value: str) -> tuple[str, str] | None:
    """``"vault://a/b#k"`` -> ``("vault", "a/b#k")``; a literal -> None."""
    m = _REF_RE.match(value) if isinstance(value, str) else None
    if not m:
        return None
    return m.group(1).lower(), m.group(2)


def is_reference(value: Any, schemes: Iterable[str] | None = None) -> bool:
    """True for ``scheme://...`` (of a registered scheme, when `schemes` is given), or a list
    containing one."""
    if isinstance(value, list):
        return any(is_reference(v, schemes) for v in value)
    parsed = parse_ref(value) if isinstance(value, str) else None
    if parsed is None:
        return False
    return schemes is None or parsed[0] in set(schemes)


def describe_ref(ref: SecretRef) -> str:
    """A printable form of a reference: references as written, literals as ``<literal>``.

    This is what warnings and errors show, so a literal secret is never echoed.
    """
    if ref is None:
        return "<unset>"
    if isinstance(ref, list):
        return " | ".join(describe_ref(r) for r in ref) or "<empty list>"
    parsed = parse_ref(ref)
    if parsed is not None and parsed[0] not in URL_SCHEMES:
        return ref
    return "<literal>"


def mask_userinfo(text: str) -> str:
    """``redis://:pw@host`` -> ``redis://***@host``: a URL's credentials are a secret too."""
    return _USERINFO_RE.sub(r"\1***@", text)


# ------------------------------------------------------------------ schemes
def resolve_env(name: str) -> str | None:
    """``env://NAME``: the variable's value; unset or empty is None."""
    if not name:
        raise SecretError("env:// reference needs a variable name, e.g. env://OPENAI_API_KEY")
    return os.environ.get(name) or None


def builtin_schemes() -> dict[str, SchemeResolver]:
    return {"env": resolve_env, "vault": resolve_vault}


def schemes_for(plugins: PluginManager | None) -> dict[str, SchemeResolver]:
    """Every registered scheme. Built-ins are present even when the manager lacks them."""
    found: dict[str, SchemeResolver] = {}
    if plugins is not None:
        def register(scheme: str, resolver: SchemeResolver) -> None:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", scheme or ""):
                raise SecretError(f"invalid secret scheme name {scheme!r}")
            found[scheme.lower()] = resolver

        from legion_core.settings.loader import each_impl

        for _ in each_impl(plugins, "legion_secret_schemes", register=register):
            pass
    for k, v in builtin_schemes().items():
        found.setdefault(k, v)
    return found


# ------------------------------------------------------------------ resolution
def resolve(ref: SecretRef, schemes: Mapping[str, SchemeResolver] | None = None, *,
            failures: list[str] | None = None) -> str | None:
    """Resolve a reference to its value, or None when it is not set.

    :param failures: when given, hard failures inside a chain are appended here (for the
        caller's own single warning) instead of being logged one by one.
    :raises SecretError: a single reference failed hard (Vault unreachable, 403, missing key,
        unknown scheme). Inside a list, such a failure falls through to the next entry.
    """
    schemes = schemes if schemes is not None else builtin_schemes()
    if ref is None:
        return None
    if isinstance(ref, list | tuple):
        for entry in ref:
            try:
                value = _resolve_one(entry, schemes)
            except SecretError as e:
                if failures is not None:
                    failures.append(str(e))
                else:
                    log.warning("secret reference failed; trying the next one in the chain",
                                reference=describe_ref(entry), error=str(e))
                continue
            if value:
                return value
        return None
    return _resolve_one(ref, schemes)


def _resolve_one(ref: Any, schemes: Mapping[str, SchemeResolver]) -> str | None:
    if ref is None:
        return None
    if not isinstance(ref, str):
        raise SecretError(f"a secret reference must be a string, not {type(ref).__name__}")
    parsed = parse_ref(ref)
    if parsed is None:
        value: str | None = ref or None  # a literal
    else:
        scheme, rest = parsed
        resolver = schemes.get(scheme)
        if resolver is None and scheme in URL_SCHEMES:
            return _literal(ref)
        if resolver is None:
            close = difflib.get_close_matches(scheme, list(schemes), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]}://? " if close else ""
            raise SecretError(f"unknown secret scheme {scheme!r} in reference {ref!r}; {hint}"
                              f"registered schemes: {', '.join(sorted(schemes))}", reference=ref)
        try:
            value = resolver(rest)
        except SecretError:
            raise
        except Exception as e:  # noqa: BLE001 - a plugin's resolver; report by reference only
            raise SecretError(f"secret reference {ref!r} failed: {type(e).__name__}",
                              reference=ref) from None
        if value is not None and not isinstance(value, str):
            value = str(value)
    if value:
        redact(value)
    return value or None


def _literal(url: str) -> str:
    m = _USERINFO_RE.match(url)
    if m:  # mask the password (and the URL with it) wherever it would be printed
        redact(url)
        userinfo = url[len(m.group(1)):m.end() - 1]
        redact(userinfo.partition(":")[2] or userinfo)
    return url


# ------------------------------------------------------------------ Vault KV v2
class VaultClient:
    """A tiny HashiCorp Vault KV v2 reader: ``GET $VAULT_ADDR/v1/<mount>/data/<path>``.

    Values are cached per (address, mount, path) for the life of the process: secrets are
    resolved once at boot, and a second reference into the same secret costs no request.
    """

    def __init__(self, addr: str | None = None, token: str | None = None,
                 timeout: float | None = None, namespace: str | None = None) -> None:
        self._addr, self._token, self._timeout, self._namespace = addr, token, timeout, namespace
        self._cache: dict[tuple[str, str], dict[str, Any]] = {}
        self._clients: dict[tuple[bool, str | bool], httpx.Client] = {}
        self._lock = threading.Lock()
        #: Number of HTTP requests made (tests use it to prove caching).
        self.requests = 0

    # settings are read at call time so `VAULT_ADDR` can change between boots and tests
    @property
    def addr(self) -> str | None:
        return (self._addr or os.environ.get("VAULT_ADDR") or "").rstrip("/") or None

    @property
    def timeout(self) -> float:
        if self._timeout is not None:
            return self._timeout
        raw = os.environ.get("LEGION_VAULT_TIMEOUT")
        if not raw:
            return DEFAULT_VAULT_TIMEOUT
        try:
            t = float(raw)
        except ValueError:
            raise SecretError(f"LEGION_VAULT_TIMEOUT must be a number of seconds, got {raw!r}") from None
        if t <= 0:
            raise SecretError(f"LEGION_VAULT_TIMEOUT must be positive, got {raw!r}")
        return t

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def _client(self, addr: str) -> httpx.Client:
        """One pooled client per TLS/proxy configuration: building one (its SSL context) costs
        tens of milliseconds, more than the request itself."""
        # Proxies from the environment apply, except to loopback (a local dev Vault).
        key = (not _is_loopback(addr), tls_verify())
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = httpx.Client(trust_env=key[0], verify=key[1])
            return client

    def close(self) -> None:
        with self._lock:
            for c in self._clients.values():
                c.close()
            self._clients.clear()

    def resolve(self, rest: str) -> str | None:
        """``rest`` is what follows ``vault://``: ``<mount>/<path>#<key>``."""
        ref = f"vault://{rest}"
        path, _, key = rest.partition("#")
        path = path.strip("/")
        if "/" not in path:
            raise SecretError(f"{ref}: expected vault://<mount>/<path>#<key>, "
                              "e.g. vault://secret/legion/openai#api_key", reference=ref)
        data = self.read(path, ref)
        if not key:
            if len(data) == 1:
                key = next(iter(data))
            else:
                raise SecretError(f"{ref}: the secret has {len(data)} keys; name one with #<key> "
                                  f"(keys: {', '.join(sorted(data))})", reference=ref)
        if key not in data:
            raise SecretError(f"{ref}: key {key!r} not found in the secret "
                              f"(keys present: {', '.join(sorted(data)) or 'none'})", reference=ref)
        value = data[key]
        if value is None:
            return None
        if isinstance(value, dict | list):
            raise SecretError(f"{ref}: the value of key {key!r} is a {type(value).__name__}, "
                              "expected a string", reference=ref)
        return str(value) if not isinstance(value, str) else value

    def read(self, path: str, ref: str) -> dict[str, Any]:
        """The whole ``data.data`` object of a KV v2 secret (cached)."""
        addr = self.addr
        if not addr:
            raise SecretError(f"{ref}: VAULT_ADDR is not set", reference=ref)
        cache_key = (addr, path)
        with self._lock:
            if cache_key in self._cache:
                return self._cache[cache_key]
        token = self._token or os.environ.get("VAULT_TOKEN") or _token_file()
        if not token:
            raise SecretError(f"{ref}: VAULT_TOKEN is not set (nor is there a ~/.vault-token "
                              "from `vault login`)", reference=ref)
        mount, _, sub = path.partition("/")
        url = f"{addr}/v1/{quote(mount)}/data/{quote(sub)}"
        headers = {"X-Vault-Token": token, "Accept": "application/json"}
        ns = self._namespace or os.environ.get("VAULT_NAMESPACE")
        if ns:
            headers["X-Vault-Namespace"] = ns
        timeout = self.timeout
        self.requests += 1
        try:
            resp = self._client(addr).get(url, headers=headers, timeout=timeout)
        except httpx.TimeoutException:
            raise SecretError(f"{ref}: Vault at {addr} did not answer within {timeout:g} s "
                              "(LEGION_VAULT_TIMEOUT)", reference=ref) from None
        except httpx.HTTPError as e:
            raise SecretError(f"{ref}: Vault at {addr} is unreachable ({type(e).__name__})",
                              reference=ref) from None
        if resp.status_code == 403:
            raise SecretError(f"{ref}: Vault denied access (HTTP 403: permission denied); "
                              "check VAULT_TOKEN and its policy for this path", reference=ref)
        if resp.status_code == 404:
            if _is_deleted(resp):
                raise SecretError(f"{ref}: the latest version of the secret is deleted "
                                  "(HTTP 404)", reference=ref)
            raise SecretError(f"{ref}: no secret at {mount}/{sub} in KV v2 mount {mount!r} "
                              "(HTTP 404)", reference=ref)
        if resp.status_code != 200:
            raise SecretError(f"{ref}: Vault answered HTTP {resp.status_code}"
                              f"{_vault_errors(resp)}", reference=ref)
        try:
            body = resp.json()
            data = body["data"]["data"]
        except Exception:  # noqa: BLE001 - any shape problem is the same error for the user
            raise SecretError(f"{ref}: Vault's answer is not a KV v2 secret (expected "
                              "{{\"data\": {{\"data\": {{...}}}}}}; is {mount!r} a KV v1 mount?)",
                              reference=ref) from None
        if data is None:  # a deleted or destroyed version
            raise SecretError(f"{ref}: the latest version of the secret is deleted", reference=ref)
        if not isinstance(data, dict):
            raise SecretError(f"{ref}: Vault's data.data is not an object", reference=ref)
        for v in data.values():
            if isinstance(v, str):
                redact(v)
        with self._lock:
            self._cache[cache_key] = data
        return data


def _vault_errors(resp: httpx.Response) -> str:
    try:
        errors = resp.json().get("errors") or []
    except Exception:  # noqa: BLE001
        return ""
    text = "; ".join(str(e) for e in errors)[:200]
    return f": {text}" if text else ""


def _token_file() -> str | None:
    """The token `vault login` stores in ~/.vault-token (what the Vault CLI itself falls back to)."""
    try:
        return (Path.home() / ".vault-token").read_text().strip() or None
    except OSError:
        return None


def tls_verify() -> str | bool:
    """TLS verification as the Vault CLI configures it: `VAULT_CACERT` (a CA bundle) or
    `VAULT_SKIP_VERIFY=true` (development only)."""
    if os.environ.get("VAULT_SKIP_VERIFY", "").strip().lower() in {"1", "true", "yes", "on"}:
        return False
    return os.environ.get("VAULT_CACERT") or True


def _is_deleted(resp: httpx.Response) -> bool:
    try:
        meta = resp.json()["data"]["metadata"]
        return bool(meta.get("deletion_time") or meta.get("destroyed"))
    except Exception:  # noqa: BLE001 - a plain 404 has no data
        return False


def _is_loopback(addr: str) -> bool:
    host = urlsplit(addr).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: The process-wide client the built-in ``vault`` scheme uses.
VAULT = VaultClient()


def resolve_vault(rest: str) -> str | None:
    return VAULT.resolve(rest)


# ------------------------------------------------------------------ boot-time helpers
def resolve_credentials(
    providers: dict[str, ProviderSettings],
    classes: dict[str, type[Provider]],
    plugins: PluginManager | None,
    *,
    quiet: bool = False,
) -> tuple[dict[str, ProviderSettings], dict[str, list[str]]]:
    """Resolve every secret-bearing field of every provider's settings.

    Secret-bearing: ``api_key``, the provider class's ``credential_keys``, and any string or
    list option whose value is a reference of a registered scheme.

    :returns: (copies of the settings with values in place of references,
        provider name -> references that did not resolve). Unresolved fields are set to None.
    """
    schemes = schemes_for(plugins)
    resolved: dict[str, ProviderSettings] = {}
    unresolved: dict[str, list[str]] = {}
    for name, ps in providers.items():
        cls = classes.get(ps.type or name)
        declared = tuple(getattr(cls, "credential_keys", ()))
        cred_keys = list(dict.fromkeys(["api_key", *declared]))
        extras = ps.extra_options()
        keys = list(dict.fromkeys(cred_keys + [k for k, v in extras.items() if is_reference(v, schemes)]))
        copy = ps.model_copy(deep=True)
        missing: list[str] = []
        failures: list[str] = []
        got_credential = False
        for key in keys:
            is_field = key in type(ps).model_fields
            ref = getattr(ps, key) if is_field else extras.get(key)
            if ref is None or not isinstance(ref, str | list):
                continue
            value: str | None = None
            if ps.enabled is not False:  # a disabled provider's secrets are not fetched
                try:
                    value = resolve(ref, schemes, failures=failures)
                except SecretError as e:
                    failures.append(str(e))
                if value is None:
                    missing.append(describe_ref(ref))
                elif key in cred_keys:
                    got_credential = True
            if is_field:
                object.__setattr__(copy, key, value)
            else:
                assert copy.__pydantic_extra__ is not None
                copy.__pydantic_extra__[key] = value
        if (ps.enabled is not False and getattr(cls, "needs_credentials", False)
                and not got_credential and not missing):
            missing.append(f"{' or '.join(declared or ('api_key',))} (not set)")
        resolved[name] = copy
        detail = {"error": "; ".join(failures)} if failures else {}
        if missing:
            unresolved[name] = missing
            if not quiet:
                log.warning("provider credential did not resolve", provider=name,
                            reference=", ".join(missing), **detail)
        elif failures and not quiet:
            log.warning("provider credential: a reference failed, the next one in its chain was used",
                        provider=name, **detail)
    return resolved, unresolved


def resolve_api_keys(refs: Iterable[SecretRef], schemes: Mapping[str, SchemeResolver] | None = None
                     ) -> list[str]:
    """Resolve `llm.api.auth.api_keys` (gateway auth). Entries that do not resolve are dropped
    with a warning naming the reference."""
    keys: list[str] = []
    for ref in refs:
        try:
            value = resolve(ref, schemes)
        except SecretError as e:
            log.warning("gateway API key reference did not resolve", reference=describe_ref(ref),
                        error=str(e))
            continue
        if value is None:
            log.warning("gateway API key reference did not resolve", reference=describe_ref(ref))
            continue
        keys.append(value)
    return keys
