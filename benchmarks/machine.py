"""The line every benchmark prints first: the machine, torch and the load its numbers were measured
under (this project's machines are shared; a busy neighbour shows in the load average)."""

from __future__ import annotations

import os
import platform


def describe() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {gpu}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), load average "
            f"{os.getloadavg()[0]:.1f}")
