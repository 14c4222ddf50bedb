"""legion-signal-gpu: GPU load as a per-provider routing signal.

The plugin object registered under the `legion` entry point is `legion_signal_gpu.plugin:plugin`.
"""

from legion_signal_gpu.poller import GpuPoller
from legion_signal_gpu.settings import GpuSettings

__all__ = ["GpuPoller", "GpuSettings"]
