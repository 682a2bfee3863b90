"""Where the checkout, the jar cache and runtime state live (all state stays in ignored folders)."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    configured = os.environ.get("MELON_HOME")
    if configured:
        return Path(configured).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "deploy" / "kafka" / "pom.xml").is_file():
            return parent
    raise RuntimeError("cannot find the Melon Hall checkout; set MELON_HOME")


def cache_dir() -> Path:
    return repo_root() / ".cache"


def var_dir() -> Path:
    return repo_root() / "var"
