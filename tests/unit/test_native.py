"""The stale-build guard: a compiled module older than its source must be reported."""

from __future__ import annotations

import ast
import os
from collections.abc import Callable
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


# mypyc 2.4 mishandles a compiled coroutine that suspends inside an ``except`` or ``finally``
# block after an exception was thrown into it (a failed future): awaited by another compiled
# coroutine, the exception is lost, the task hangs, or the process crashes (reproduced here;
# see docs/notes.md, session 5). Compiled modules therefore finish exception handling before
# they await, and use ``async with`` only on asyncio locks and timeouts, whose exits never
# suspend. scripts/native/check_async_bug.py re-checks a mypyc release.
_NON_SUSPENDING_CONTEXTS = ("lock", "asyncio.timeout(")


def _suspensions_in_handlers(source: str) -> list[int]:
    tree = ast.parse(source)
    found: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Try | ast.TryStar):
            handlers = [node.finalbody] + [handler.body for handler in node.handlers]
            for body in handlers:
                for statement in body:
                    found.extend(
                        inner.lineno
                        for inner in ast.walk(statement)
                        if isinstance(inner, ast.Await | ast.AsyncWith | ast.AsyncFor)
                    )
        if isinstance(node, ast.AsyncWith):
            for item in node.items:
                text = ast.unparse(item.context_expr)
                if not any(marker in text.lower() for marker in _NON_SUSPENDING_CONTEXTS):
                    found.append(node.lineno)
    return sorted(set(found))


def test_the_guard_sees_an_await_in_a_handler() -> None:
    source = (
        "async def f():\n"
        "    try:\n"
        "        await g()\n"
        "    except OSError:\n"
        "        await h()\n"
        "    async with session.lock:\n"
        "        pass\n"
        "    async with open_thing():\n"
        "        pass\n"
    )
    assert _suspensions_in_handlers(source) == [5, 8]


def test_compiled_modules_do_not_suspend_while_handling_an_exception() -> None:
    assert _offenders(_suspensions_in_handlers) == []


def _except_names_with_two_types(source: str) -> list[int]:
    """mypyc gives a local name one type per function: ``except A as exc`` then
    ``except B as exc`` raises TypeError when B is caught (seen in session 5)."""
    found: list[int] = []

    def visit(function: ast.AST) -> None:
        handlers: list[ast.ExceptHandler] = []
        stack = list(ast.iter_child_nodes(function))
        while stack:
            node = stack.pop()
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(node)  # a nested function has names of its own
                continue
            if isinstance(node, ast.ExceptHandler) and node.name and node.type is not None:
                handlers.append(node)
            stack.extend(ast.iter_child_nodes(node))
        kinds: dict[str, str] = {}
        for handler in sorted(handlers, key=lambda handler: handler.lineno):
            assert handler.name is not None and handler.type is not None
            kind = ast.unparse(handler.type)
            if kinds.setdefault(handler.name, kind) != kind:
                found.append(handler.lineno)

    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                visit(member)
        else:
            visit(node)
    return sorted(found)


def test_the_guard_sees_one_name_given_two_exception_types() -> None:
    source = (
        "def f():\n"
        "    try:\n"
        "        g()\n"
        "    except KeyError as exc:\n"
        "        pass\n"
        "    except ValueError as exc:\n"
        "        pass\n"
        "    def inner():\n"
        "        try:\n"
        "            g()\n"
        "        except OSError as exc:\n"
        "            pass\n"
    )
    assert _except_names_with_two_types(source) == [6]


def test_compiled_modules_name_each_caught_type_apart() -> None:
    assert _offenders(_except_names_with_two_types) == []


def _ellipsis_defaults(source: str) -> list[int]:
    """Lines of parameters defaulting to ``...``: compiled, a Protocol method's ``= ...``
    is a real default checked against the declared type, and the import fails."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            defaults = [*node.args.defaults, *node.args.kw_defaults]
            lines += [
                d.lineno for d in defaults if isinstance(d, ast.Constant) and d.value is Ellipsis
            ]
    return lines


def test_the_guard_sees_an_ellipsis_default() -> None:
    source = "class P(Protocol):\n    async def call(self, timeout: float = ...) -> None: ...\n"
    assert _ellipsis_defaults(source) == [2]


def test_compiled_modules_have_no_ellipsis_defaults() -> None:
    assert _offenders(_ellipsis_defaults) == []


def _offenders(guard: Callable[[str], list[int]]) -> list[str]:
    """``path:line`` of each compiled module's source line that ``guard`` flags."""
    return [
        f"{path.relative_to(_native.ROOT)}:{line}"
        for path in _native.sources()
        for line in guard(path.read_text())
    ]
