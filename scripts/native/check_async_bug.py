"""Does this mypyc still mishandle suspending inside an exception handler?

Compiles a small module in a temporary directory and runs each case in its own process
(a case may hang or crash). With mypyc 2.4.1 the ``except_suspends`` and ``finally_suspends``
cases fail: a compiled coroutine that suspends in ``except``/``finally`` after an exception
was thrown into it, awaited by another compiled coroutine, loses the exception, hangs or
segfaults. While they fail, ``tests/unit/test_native.py`` must keep such code out of the
compiled modules. Run it after upgrading mypy:

    .venv/bin/python scripts/native/check_async_bug.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CASE_TIMEOUT_S = 20
MODULE = textwrap.dedent(
    """
    import asyncio


    async def failing() -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        loop.call_soon(fut.set_exception, OSError("disk"))
        await fut


    async def except_suspends() -> None:
        try:
            await failing()
        except OSError:
            await asyncio.sleep(0.001)
            raise


    async def finally_suspends() -> None:
        try:
            await failing()
        finally:
            await asyncio.sleep(0.001)


    async def lock_exit() -> None:
        async with asyncio.Lock():
            await failing()


    async def caller(name: str) -> str:
        cases = {
            "except_suspends": except_suspends,
            "finally_suspends": finally_suspends,
            "lock_exit": lock_exit,
        }
        try:
            await cases[name]()
        except OSError:
            return "ok"
        return "exception lost"
    """
)
CASES = ("except_suspends", "finally_suspends", "lock_exit")


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "asyncprobe.py").write_text(MODULE)
        built = subprocess.run(
            [sys.executable, "-m", "mypyc", "asyncprobe.py"],
            cwd=folder,
            capture_output=True,
            text=True,
        )
        if built.returncode != 0:
            print(built.stdout[-2000:], built.stderr[-2000:], sep="\n")
            return 2
        broken = 0
        for case in CASES:
            program = f"import asyncio, asyncprobe; print(asyncio.run(asyncprobe.caller({case!r})))"
            try:
                done = subprocess.run(
                    [sys.executable, "-c", program],
                    cwd=folder,
                    capture_output=True,
                    text=True,
                    timeout=CASE_TIMEOUT_S,
                )
                verdict = (
                    done.stdout.strip() if done.returncode == 0 else f"crashed ({done.returncode})"
                )
            except subprocess.TimeoutExpired:
                verdict = "hung"
            broken += verdict != "ok"
            print(f"{case}: {verdict}")
    print("mypyc mishandles it: keep the guard" if broken else "all cases behave: the bug is fixed")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
