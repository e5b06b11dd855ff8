"""The report's Environment section: versions, device, seeds, git commit, platform and date."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emoshift.study.spec import Study


def _git_commit() -> str:
    """The emoshift checkout's commit (with '+ local changes' when it has some), or 'unavailable'."""
    src = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unavailable (not a git checkout)"
    return head + (" + local changes" if dirty else "")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment(study: Study) -> list[tuple[str, str]]:
    """(name, value) pairs: versions, device, seeds, git commit, date."""
    try:
        import torch

        if torch.cuda.is_available():
            device = f"cuda: {torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()})"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps (Apple GPU)"
        else:
            device = f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
        torch_version = str(torch.__version__)
    except ImportError:  # the core install (no train extra): a report of complete runs
        device, torch_version = "unknown", "not installed"
    configs = [e.config for e in study.experiments if e.config is not None]
    seeds = {
        "training.seed": sorted({c.training.seed for c in configs}),
        "data.split.seed": sorted({c.data.split.seed for c in configs}),
        "evaluation.seed": sorted({c.evaluation.seed for c in configs}),
    }
    accelerators = sorted({c.trainer.accelerator for c in configs})
    return [
        ("python", sys.version.split()[0]),
        ("torch", torch_version),
        ("transformers", _version("transformers")),
        ("lightning", _version("lightning")),
        ("emoshift", _version("emoshift")),
        ("device", device + (f"; trainer.accelerator {', '.join(accelerators)}" if accelerators else "")),
        ("seeds", "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in seeds.items() if v) or "–"),
        ("git commit", _git_commit()),
        ("platform", platform.platform()),
        ("date", datetime.now().astimezone().isoformat(timespec="seconds")),
    ]
