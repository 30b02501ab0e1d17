"""The stale-build guard: a compiled module older than its source must be reported."""

from __future__ import annotations

import os
from pathlib import Path

from core import _native


def _touch(path: Path, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    os.utime(path, (mtime, mtime))


def test_a_compiled_module_older_than_its_source_is_stale(tmp_path: Path) -> None:
    suffix = _native.EXTENSION_SUFFIX
    _touch(tmp_path / "core" / "fresh.py", 1_000)
    _touch(tmp_path / "core" / f"fresh{suffix}", 2_000)
    _touch(tmp_path / "agents" / "x" / "old.py", 3_000)
    _touch(tmp_path / "agents" / "x" / f"old{suffix}", 2_000)
    # mypyc's runtime library has no source of its own: never stale.
    _touch(tmp_path / "agents" / "x" / f"old__mypyc{suffix}", 1)

    assert sorted(_native.compiled_modules(tmp_path)) == sorted(
        [
            tmp_path / "core" / f"fresh{suffix}",
            tmp_path / "agents" / "x" / f"old{suffix}",
            tmp_path / "agents" / "x" / f"old__mypyc{suffix}",
        ]
    )
    assert _native.stale(tmp_path) == [tmp_path / "agents" / "x" / f"old{suffix}"]
    assert "old" in _native.stale_message(_native.stale(tmp_path))



def test_pure_mode_finds_the_source_beside_a_compiled_copy(tmp_path: Path) -> None:
    _touch(tmp_path / "fresh.py", 1_000)
    _touch(tmp_path / f"fresh{_native.EXTENSION_SUFFIX}", 2_000)
    finder = _native._SourceFirstFinder()

    spec = finder.find_spec("core.fresh", [str(tmp_path)])

    assert spec is not None and spec.origin == str(tmp_path / "fresh.py")
    assert finder.find_spec("core.absent", [str(tmp_path)]) is None
    assert finder.find_spec("elsewhere.fresh", [str(tmp_path)]) is None  # only our packages
