"""Which modules ship compiled by mypyc, and whether the compiled copies match the sources.

The hot paths (codecs, templating, session charging) run as C extensions built by mypyc from
the very same typed sources; every module also runs unchanged as plain Python, which is what a
machine without a C compiler gets. An extension module shadows its ``.py`` sibling at import,
so a compiled copy older than its source would silently run old code: ``stale()`` tells, and
the CLI and the test suite refuse to start on stale copies (``scripts/setup`` rebuilds them).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Final

ROOT = Path(__file__).resolve().parent.parent
LISTS_DIR = ROOT / "scripts" / "native"  # one *.txt per area: a source glob per line
BUILD_DIR = ROOT / "build" / "native"
STAMP = BUILD_DIR / "stamp"
EXTENSION_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]
PURE_ENV: Final = "CHARGEFLOW_PURE"  # set to 1: import our sources even where compiled copies exist


def sources() -> list[Path]:
    """The source files to compile, sorted, from every list in ``scripts/native``."""
    found: set[Path] = set()
    for listing in sorted(LISTS_DIR.glob("*.txt")):
        for line in listing.read_text().splitlines():
            pattern = line.split("#", 1)[0].strip()
            if pattern:
                found.update(ROOT.glob(pattern))
    return sorted(path for path in found if path.suffix == ".py")


def digest(paths: list[Path]) -> str:
    """What a build depends on: the sources, their list, and the compiler and interpreter."""
    import mypy.version  # only where a build is wanted; the runtime check reads the stamp

    hasher = hashlib.sha256()
    hasher.update(f"{sys.version}|{mypy.version.__version__}".encode())
    for path in paths:
        hasher.update(str(path.relative_to(ROOT)).encode())
        hasher.update(path.read_bytes())
    return hasher.hexdigest()


def compiled_modules(root: Path = ROOT) -> list[Path]:
    """Extension modules present in the source tree (whatever built them)."""
    found: list[Path] = []
    for package in ("core", "agents"):
        found.extend((root / package).rglob(f"*{EXTENSION_SUFFIX}"))
    return found


def stale(root: Path = ROOT) -> list[Path]:
    """Compiled modules whose ``.py`` source is newer than the compiled copy."""
    return [
        module
        for module in compiled_modules(root)
        if (source := module.with_name(module.name[: -len(EXTENSION_SUFFIX)] + ".py")).exists()
        and source.stat().st_mtime > module.stat().st_mtime
    ]


def stale_in_use() -> list[Path]:
    """Stale compiled modules that imports would pick up (none with ``CHARGEFLOW_PURE=1``)."""
    return [] if os.environ.get(PURE_ENV) == "1" else stale()


def stale_message(modules: list[Path]) -> str:
    names = ", ".join(
        str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path) for path in modules[:5]
    )
    more = f" and {len(modules) - 5} more" if len(modules) > 5 else ""
    return (
        f"compiled modules older than their sources: {names}{more}; "
        "run scripts/setup to rebuild them (or .venv/bin/python scripts/native/build.py --pure "
        "to remove them)"
    )


class _SourceFirstFinder(importlib.abc.MetaPathFinder):
    """Finds ``core.*`` and ``agents.*`` modules as ``.py`` files, ignoring compiled copies."""

    _LOADERS: Final = [(importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES)]

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if path is None or not fullname.startswith(("core.", "agents.")):
            return None
        for entry in path:
            spec = importlib.machinery.FileFinder(entry, *self._LOADERS).find_spec(fullname)
            if spec is not None:
                return spec
        return None


def prefer_sources_when_asked() -> None:
    """With ``CHARGEFLOW_PURE=1`` the fallback (plain Python) runs although compiled copies
    exist: the test script checks both modes on one build."""
    if os.environ.get(PURE_ENV) == "1" and not any(
        isinstance(finder, _SourceFirstFinder) for finder in sys.meta_path
    ):
        sys.meta_path.insert(0, _SourceFirstFinder())
