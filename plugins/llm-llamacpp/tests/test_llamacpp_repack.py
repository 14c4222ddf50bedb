"""Weight repacking (llama.cpp's extra buffer types) and the AMX crash.

On CPUs with AMX (Intel Sapphire Rapids and later) llama.cpp repacks weights into an AMX buffer,
and its AMX matrix multiply segfaults on some such hosts (llama.cpp#20824; this project's CI VM
is one): the first generation killed the process. The engine turns the extra buffer types off
where the CPU reports AMX, unless `repack` says otherwise.
"""

from __future__ import annotations

import pytest
from legion_llm_llamacpp import engine
from legion_llm_llamacpp.engine import EngineConfig, LlamaEngine
from legion_llm_llamacpp.model_files import default_model_path


@pytest.mark.parametrize(("setting", "amx", "expected"), [
    (None, True, False),   # auto: off where AMX is present
    (None, False, True),   # auto: on elsewhere (the faster repacked kernels)
    (True, True, True),    # an operator who knows their host
    (False, False, False),
])
def test_repack_follows_the_setting_and_the_cpu(monkeypatch, setting, amx, expected):
    monkeypatch.setattr(engine, "cpu_has_amx", lambda: amx)
    assert LlamaEngine(EngineConfig(model_path=default_model_path(), repack=setting)).repack_enabled() is expected


def test_amx_is_read_from_llama_cpp_system_info():
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode()
    assert engine.cpu_has_amx() is ("AMX_INT8 = 1" in info)


def test_the_loaded_model_uses_the_decided_params(monkeypatch):
    """What `repack_enabled()` decides is what llama.cpp gets (`use_extra_bufts`)."""
    import llama_cpp

    seen: list[bool] = []
    real = llama_cpp.Llama

    class Spy(real):  # type: ignore[misc, valid-type]
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            seen.append(bool(self.model_params.use_extra_bufts))

    monkeypatch.setattr(llama_cpp, "Llama", Spy)
    for repack in (False, True):
        eng = LlamaEngine(EngineConfig(model_path=default_model_path(), repack=repack))
        if repack and engine.cpu_has_amx():
            continue  # loading with AMX repacking is what crashes on some hosts; nothing runs here
        eng._open(embedding=False)
    assert seen[0] is False and all(s is True for s in seen[1:])


def test_the_repack_setting_is_read_and_checked():
    from legion_llm_llamacpp.provider import LlamaCppProvider

    from legion_core.settings.models import ProviderSettings

    assert LlamaCppProvider("a", ProviderSettings(repack=False)).engine.config.repack is False
    assert LlamaCppProvider("b", ProviderSettings(repack="auto")).engine.config.repack is None
    with pytest.raises(ValueError, match=r"providers\.c\.repack must be true, false or \"auto\", got 'yes'"):
        LlamaCppProvider("c", ProviderSettings(repack="yes"))
