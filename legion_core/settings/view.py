"""The effective settings as `legion config` shows them: every key, its value, its source.

Redaction rules (the view is printed, so it must never carry a secret):
- a secret *reference* (``env://X``, ``vault://p#k``, ...) is shown as written;
- under a secret-looking key (api_key, secret, token, password, bearer, credential...), any
  other string (a literal secret) shows as ``***``;
- anywhere, a value that was resolved as a secret this process (`legion_core.log.redact`)
  is masked as ``***``, and so is the user:password part of any URL.
"""

from __future__ import annotations

from typing import Any

from legion_core.log import MASK, scrub
from legion_core.secrets import is_reference, mask_userinfo
from legion_core.settings.loader import SECRET_KEY_RE, LoadedSettings, Parts, leaves, path_str


def is_secret_key(parts: Parts) -> bool:
    return any(isinstance(p, str) and SECRET_KEY_RE.search(p) for p in parts)


def redact_value(parts: Parts, value: Any) -> Any:
    """The printable form of one leaf value."""
    secret_key = is_secret_key(parts)
    if isinstance(value, list):
        return [redact_value(parts, v) for v in value]
    if isinstance(value, dict):
        return {k: redact_value(parts + (k,), v) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    if is_reference(value):
        return mask_userinfo(scrub(value))
    if secret_key and value:
        return MASK
    return mask_userinfo(scrub(value))


def _effective_doc(loaded: LoadedSettings) -> dict[str, Any]:
    doc = loaded.settings.model_dump(mode="json")
    for name, model in loaded.sections.items():  # plugin sections, with their defaults
        doc[name] = model.model_dump(mode="json")
    return doc


def effective_view(loaded: LoadedSettings) -> list[tuple[str, Any, str]]:
    """``[(dotted key, redacted value, source), ...]`` in settings order."""
    rows: list[tuple[str, Any, str]] = []
    for parts, value in leaves(_effective_doc(loaded)):
        key = path_str(parts)
        source = loaded.provenance.get(key) or loaded.source(parts)
        rows.append((key, redact_value(parts, value), source))
    return rows


def effective_dict(loaded: LoadedSettings) -> dict[str, dict[str, Any]]:
    """``{dotted key: {"value": redacted value, "source": source}}`` (for ``--json``)."""
    return {k: {"value": v, "source": s} for k, v, s in effective_view(loaded)}


def redacted_settings(loaded: LoadedSettings) -> dict[str, Any]:
    """The effective settings as one nested document, secrets redacted."""
    doc = _effective_doc(loaded)
    return {k: redact_value((k,), v) for k, v in doc.items()}
