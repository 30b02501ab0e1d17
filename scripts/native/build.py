"""Compiles the hot modules listed in scripts/native/*.txt with mypyc, in place.

Run by scripts/setup; quick when nothing changed (a stamp records what was built). A failed
build leaves no compiled module behind: everything then runs as plain Python, only slower.

    .venv/bin/python scripts/native/build.py            # build if needed
    .venv/bin/python scripts/native/build.py --pure     # remove the compiled modules
    .venv/bin/python scripts/native/build.py --strict   # a failed build is an error
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core._native import (
    BUILD_DIR,
    EXTENSION_SUFFIX,
    ROOT,
    STAMP,
    compiled_modules,
    digest,
    sources,
    stale,
)

# mypyc's shared library for the whole group lives inside the `core` package, so the installed
# `chargeflow` command finds it from any directory (the repository root is not on its path).
GROUP_NAME = "core.native"
LOG = BUILD_DIR / "build.log"


def remove_compiled() -> None:
    for module in compiled_modules():
        module.unlink(missing_ok=True)
    STAMP.unlink(missing_ok=True)


def remove_scratch() -> None:
    for scratch in ("obj", "lib", "c"):
        shutil.rmtree(BUILD_DIR / scratch, ignore_errors=True)


def up_to_date(paths: list[Path], want: str) -> bool:
    if not STAMP.exists() or STAMP.read_text().strip() != want or stale():
        return False
    return all(path.with_suffix(EXTENSION_SUFFIX).exists() for path in paths)


def build(paths: list[Path]) -> bool:
    """Runs mypyc + the C compiler in a child process; True when every module was built."""
    # Always from scratch: objects kept from a failed build would be copied in with old times.
    remove_scratch()
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    relative = [str(path.relative_to(ROOT)) for path in paths]
    program = (
        "import sys\n"
        "from setuptools import setup\n"
        "from mypyc.build import mypycify\n"
        f"modules = mypycify({relative!r}, opt_level='3', group_name={GROUP_NAME!r}, "
        f"target_dir={str(BUILD_DIR / 'c')!r})\n"
        "setup(name='chargeflow-native', ext_modules=modules, script_args=["
        f"'build_ext', '--inplace', '--parallel', '{os.cpu_count() or 1}', "
        f"'--build-temp', {str(BUILD_DIR / 'obj')!r}, '--build-lib', {str(BUILD_DIR / 'lib')!r}])\n"
    )
    with LOG.open("w") as log:
        done = subprocess.run(
            [sys.executable, "-c", program], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
    built = all(path.with_suffix(EXTENSION_SUFFIX).exists() for path in paths)
    return done.returncode == 0 and built


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pure", action="store_true", help="remove the compiled modules")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the build fails")
    args = parser.parse_args()
    if args.pure:
        remove_compiled()
        print("native: compiled modules removed; everything runs as plain Python")
        return 0
    paths = sources()
    want = digest(paths)
    if up_to_date(paths, want):
        return 0
    remove_compiled()
    if not paths:
        return 0
    started = time.monotonic()
    print(f"native: compiling {len(paths)} modules with mypyc (a few minutes) ...", flush=True)
    if not build(paths):
        remove_compiled()
        print(
            f"native: WARNING: the mypyc build failed (see {LOG}); running as plain Python",
            file=sys.stderr,
        )
        return 1 if args.strict else 0
    STAMP.write_text(want + "\n")
    remove_scratch()
    print(f"native: {len(paths)} modules compiled in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
