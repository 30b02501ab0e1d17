"""Writing field lists into the request's trees: the general evaluator (``apply_fields``, the
reference) and its compiled form (``compile_fields``), used by the request processors.

``compile_fields`` turns a whole field list into one generated Python function at load: the
filters, the read, the missing-value rule, the write and the blocker of every field are laid
out in line, so a request pays no loop, no per-field dispatch on type, path shape or
writer, and no exception for an optional value that is absent. Fields whose shape it does not
inline (``*remove``, ``*group``, indexes, new branches, widths, computed types ...) call the
general step for that one field, so the generated function does exactly what
``apply_fields`` does, field by field (tests/unit/agents/templating/test_applying.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from agents.templating.errors import NotFoundError, TemplateError
from agents.templating.fields import NONE, REMOVE, REMOVE_ALL, STRING_TYPES, Field, top_name
from agents.templating.filters import COMPARE_TYPES, Filter, is_empty, order_with
from agents.templating.paths import LENGTH, Path, as_text, number_or_none
from agents.templating.trees import MemoTree, ReplyTree, RequestTree, plain_item

if TYPE_CHECKING:
    from agents.templating.loader import Processor

TMP: Final = "*tmp"
# (trees, processor, timezone): writes the fields into the trees, as apply_fields does.
FieldList = Callable[[Mapping[str, RequestTree], "Processor | None", str], None]
# (trees, processor): whether every filter passes, as passes_filters does.
FilterList = Callable[[Mapping[str, RequestTree], "Processor | None"], bool]
FILTER_ERRORS: Final = (ValueError, ArithmeticError)
_INDENT: Final = "    "
# In-line tests of a filter's text against its literals ({literals}: all of them, {literal}:
# each one), as filters._literal_test has them.
STRING_TESTS: Final = {
    "*string": "text in {literals}",
    "*prefix": "text.startswith({literals})",
    "*suffix": "text.endswith({literals})",
    "*contains": "{literal} in text",
}
# How the generated code reads a tree (decided once per call from the tree's exact type).
READ_OTHER: Final = 0  # its get()
READ_REPLY: Final = 1  # a ReplyTree: a top-level element straight from its nodes
READ_MEMO: Final = 2  # a MemoTree: what it remembers, else its get()
# ``value`` as text, as as_text gives it, with the two commonest kinds (text, and ints such as
# Diameter Unsigned32 values) without a call.
VALUE_AS_TEXT: Final = (
    "value if type(value) is str else str(value) if type(value) is int else as_text(value)"
)
# Comparisons of an int value with whole-number literals, as filters.COMPARE_TYPES and *eq.
INT_COMPARISONS: Final = {"*gt": ">", "*gte": ">=", "*lt": "<", "*lte": "<=", "*eq": "=="}


def field_error(
    reason: str, where: Processor | None, tag: str = "", missing: str = ""
) -> TemplateError:
    return TemplateError(
        reason,
        file=where.file if where else "",
        processor=where.id if where else "",
        field=tag,
        missing=missing,
    )


# ------------------------------------------------------------------------------ general path
def passes_filters(
    filters: Sequence[Filter],
    trees: Mapping[str, RequestTree],
    where: Processor | None,
    tag: str = "",
) -> bool:
    try:
        for flt in filters:
            if not flt.check(trees):
                return False
    except FILTER_ERRORS as exc:
        raise field_error(f"filter failed: {exc}", where, tag) from None
    return True


def apply_fields(
    fields: Sequence[Field],
    trees: Mapping[str, RequestTree],
    processor: Processor | None = None,
    timezone: str = "",
) -> None:
    """Evaluates ``fields`` in order and writes them into ``trees`` (CGRateS's SetFields).

    Also for agents filling a named template outside a request, e.g. ``*asr`` into a
    ``*diamreq`` ReplyTree: ``apply_fields(templates.template("*asr"), trees)``.
    Errors name ``processor`` when given.
    """
    tmp = trees.get(TMP)
    if isinstance(tmp, ReplyTree):
        tmp.clear()  # *tmp lives for one field list, as in CGRateS
    for item in fields:
        if item.filters and not passes_filters(item.filters, trees, processor, item.tag):
            continue
        apply_one(item, trees, processor, timezone)
        if item.blocker:
            break


def apply_one(
    item: Field, trees: Mapping[str, RequestTree], processor: Processor | None, timezone: str
) -> None:
    """One field whose filters passed: its value written (or its path removed)."""
    kind = item.type
    if kind == NONE:
        return
    if kind in (REMOVE, REMOVE_ALL):
        assert item.path is not None
        target = trees.get(item.path.root)
        if isinstance(target, ReplyTree):
            if kind == REMOVE_ALL:
                target.clear()
            else:
                target.remove(item.path.names, indexes=item.path.indexes)
        return
    reader = item.reader
    try:
        value = reader(trees) if reader is not None else item.evaluator(trees, timezone)
    except NotFoundError as missing:
        if not item.mandatory:
            return
        raise field_error(
            f"mandatory value missing: {missing}", processor, item.tag, str(missing)
        ) from None
    except (ValueError, ArithmeticError) as exc:  # FieldValueError, InvalidValue, converters
        raise field_error(str(exc), processor, item.tag) from None
    path = item.path
    assert path is not None
    target = trees.get(path.root)
    if type(target) is not ReplyTree and not isinstance(target, ReplyTree):
        raise field_error(f"no writable tree {path.root}", processor, item.tag)
    try:
        item.writer(target, value)
    except IndexError as out_of_range:  # one name per type: mypyc types a name once
        raise field_error(str(out_of_range), processor, item.tag) from None


# ----------------------------------------------------------------------------- compiled path
class _Source:
    """The generated function's text and the objects it refers to by name."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {
            "ReplyTree": ReplyTree,
            "NotFoundError": NotFoundError,
            "field_error": field_error,
            "apply_one": apply_one,
            "as_text": as_text,
            "plain_item": plain_item,
            "MemoTree": MemoTree,
            "FILTER_ERRORS": FILTER_ERRORS,
        }
        self.trees: dict[str, str] = {}  # tree root -> local variable holding it

    def name(self, prefix: str, value: Any) -> str:
        """A global name for ``value`` in the generated code."""
        name = f"{prefix}{len(self.names)}"
        self.names[name] = value
        return name

    def tree(self, root: str) -> str:
        """The local variable holding ``trees.get(root)`` (read once: fields write into the
        trees, never replace them)."""
        local = self.trees.get(root)
        if local is None:
            local = self.trees[root] = f"tree{len(self.trees)}"
        return local

    def add(self, depth: int, line: str) -> None:
        self.lines.append(_INDENT * depth + line)


def compile_fields(fields: Sequence[Field], label: str = "fields") -> FieldList:
    """``fields`` as one function doing what ``apply_fields(fields, ...)`` does."""
    source = _Source()
    for index, item in enumerate(fields):
        source.add(1, f"# {index}: {item.tag}")
        depth = 1
        if item.filters:
            _filters(source, 1, item.filters, source.name("tag", item.tag))
            source.add(1, "if passed:")
            depth = 2
        _field_body(source, depth, item)
        if item.blocker:
            source.add(depth, "return")
    header = ["def apply(trees, processor, timezone):"]
    header.append(f"{_INDENT}tmp = trees.get({TMP!r})")
    header.append(f"{_INDENT}if isinstance(tmp, ReplyTree):")
    header.append(f"{_INDENT * 2}tmp.clear()")
    header += _tree_locals(source)
    function: FieldList = _build([*header, *source.lines, f"{_INDENT}return"], source, label)
    return function


def compile_filters(filters: Sequence[Filter], label: str = "filters") -> FilterList:
    """``filters`` as one function doing what ``passes_filters(filters, trees, where)``
    does."""
    source = _Source()
    _filters(source, 1, filters, source.name("tag", ""))
    lines = ["def passes(trees, processor):", *_tree_locals(source), *source.lines]
    function: FilterList = _build([*lines, f"{_INDENT}return passed"], source, label)
    return function


def _tree_locals(source: _Source) -> list[str]:
    """The prologue: each tree used, whether it is writable, and how it is read."""
    lines: list[str] = []
    for root, local in source.trees.items():
        lines.append(f"{_INDENT}{local} = trees.get({root!r})")
        lines.append(f"{_INDENT}w{local} = {local} if isinstance({local}, ReplyTree) else None")
        lines.append(
            f"{_INDENT}kind{local} = {READ_REPLY} if type({local}) is ReplyTree else "
            f"{READ_MEMO} if type({local}) is MemoTree else {READ_OTHER}"
        )
    return lines


def _filters(source: _Source, depth: int, filters: Sequence[Filter], tag: str) -> None:
    """Lines setting ``passed``: whether every filter passes, checked in order up to the first
    that fails; an error of a check is reported as passes_filters reports it."""
    source.add(depth, "passed = True")
    if not filters:
        return
    source.add(depth, "try:")
    for index, flt in enumerate(filters):
        inner = depth + 1
        if index:
            source.add(inner, "if passed:")
            inner += 1
        lines = _inline_filter(source, flt)
        if lines is None:
            lines = [f"passed = {source.name('check', flt.check)}(trees)"]
        for line in lines:
            source.add(inner, line)
    source.add(depth, "except FILTER_ERRORS as exc:")
    source.add(
        depth + 1, f'raise field_error(f"filter failed: {{exc}}", processor, {tag}) from None'
    )


def _inline_filter(source: _Source, flt: Filter) -> list[str] | None:
    """Lines setting ``passed`` as ``flt.check`` would, for a filter on one plain reference
    with literal operands that is ``*exists``, ``*empty``, a string type, or a comparison with
    whole numbers (in line for an int value, the check for any other); negated or not. None
    for the others (their compiled check is called)."""
    element = flt.element
    path = element.path
    if path is None or element.rules or element.converters or not path.plain:
        return None
    if path.names and path.names[-1] == LENGTH:
        return None
    if any(operand.reference is not None for operand in flt.operands):
        return _reference_comparison(source, flt)
    literals = tuple(operand.literal for operand in flt.operands)
    found: list[str]
    missing = "False"
    if flt.kind == "*exists":
        found = ["passed = True"]
    elif flt.kind == "*empty":
        found, missing = [f"passed = {source.name('is_empty', is_empty)}(value)"], "True"
    elif flt.kind in STRING_TESTS:
        test = STRING_TESTS[flt.kind]
        if flt.kind == "*contains":  # any literal in the text
            tests = [test.format(literal=source.name("literal", x)) for x in literals]
        elif flt.kind == "*string":
            tests = [test.format(literals=source.name("accepted", frozenset(literals)))]
        else:
            tests = [test.format(literals=source.name("literals", literals))]
        found = [
            f"text = {VALUE_AS_TEXT}",
            f"passed = {' or '.join(tests)}",
        ]
    elif flt.kind in INT_COMPARISONS:
        numbers = _whole_numbers(literals)
        if numbers is None:
            return None
        compare = " or ".join(f"value {INT_COMPARISONS[flt.kind]} {number}" for number in numbers)
        # The check is already negated: only the in-line comparison is negated below.
        found = [
            "if type(value) is int:",
            f"{_INDENT}passed = {f'not ({compare})' if flt.negated else compare}",
            "else:",
            f"{_INDENT}passed = {source.name('check', flt.check)}(trees)",
        ]
        return _with_read(source, path.root, path.names, found, "True" if flt.negated else "False")
    else:
        return None
    if flt.negated:
        found[-1] = found[-1].replace("passed = ", "passed = not (", 1) + ")"
        missing = "not " + missing
    return _with_read(source, path.root, path.names, found, missing)


def _reference_comparison(source: _Source, flt: Filter) -> list[str] | None:
    """Lines setting ``passed`` for ``*gt``/``*gte``/``*lt``/``*lte`` against one plain
    reference (``*lt:~*cgrep.MaxUsage:~*cgreq.Usage``), both read in line and ordered by
    ``order_with`` as the filter's check orders them; None for any other shape."""
    if flt.kind not in COMPARE_TYPES or len(flt.operands) != 1:
        return None
    reference = flt.operands[0].reference
    path = reference.path if reference is not None else None
    if reference is None or path is None or reference.rules or reference.converters:
        return None
    if not path.plain or (path.names and path.names[-1] == LENGTH):
        return None
    element = flt.element.path
    assert element is not None  # _inline_filter checked it
    compare = f"order is not None and order {INT_COMPARISONS[flt.kind]} 0"
    passed, missing = (f"not ({compare})", "True") if flt.negated else (compare, "False")
    order = f"order = {source.name('order_with', order_with)}(left, {VALUE_AS_TEXT})"
    found = [
        "left = value",
        *_with_read(source, path.root, path.names, [order, f"passed = {passed}"], missing),
    ]
    return _with_read(source, element.root, element.names, found, missing)


def _with_read(
    source: _Source, root: str, names: tuple[str, ...], found: list[str], missing: str
) -> list[str]:
    """``found`` run on the first value at ``names``, ``passed = missing`` without one."""
    return [
        *_read_lines(source, root, names),
        "if values:",
        *(_INDENT + line for line in found),
        "else:",
        f"{_INDENT}passed = {missing}",
    ]


def _read_lines(source: _Source, root: str, names: tuple[str, ...]) -> list[str]:
    """Lines setting ``values`` to ``trees[root].get(names)`` (or something as falsy when
    there is none) and ``value`` to its first item when there is one. A ReplyTree's top-level
    element and a MemoTree's remembered read are taken without calling ``get``."""
    tree = source.tree(root)
    kind = "kind" + tree
    path = source.name("path", names)
    lines: list[str] = []
    if len(names) == 1:  # ReplyTree.get of one name: the element's first instance, collapsed
        lines += [
            f"if {kind} == {READ_REPLY}:",
            f"{_INDENT}values = {tree}.nodes.get({names[0]!r})",
            f"{_INDENT}if values:",
            f"{_INDENT * 2}value = values[0]",
            f"{_INDENT * 2}if isinstance(value, dict):",
            f"{_INDENT * 3}value = plain_item(value)",
            "el",
        ]
    lines[-1:] = [
        f"{lines[-1] if lines else ''}if {kind} == {READ_MEMO}:",
        f"{_INDENT}values = {tree}.cache.get({path})",
        f"{_INDENT}if values is None:",
        f"{_INDENT * 2}values = {_memo_miss(tree, path)}",
        f"{_INDENT}if values:",
        f"{_INDENT * 2}value = values[0]",
        "else:",
        f"{_INDENT}values = {tree}.get({path}) if {tree} is not None else None",
        f"{_INDENT}if values:",
        f"{_INDENT * 2}value = values[0]",
    ]
    return lines


def _memo_miss(tree: str, path: str) -> str:
    """The expression reading ``path`` from a MemoTree whose cache missed it: what
    ``MemoTree.get`` does after its own cache probe, without the call and second probe."""
    return f"{tree}.cache[{path}] = {tree}.tree.get({path})"


def _last_step_selected(path: Path) -> bool:
    """Whether only the last step narrows, by one sibling selector (``...Data[~Type(^0$)]``,
    what paths._narrow's common case reads)."""
    *before, last = path.steps
    return (
        not any(step.narrowed for step in before)
        and last.index is None
        and len(last.selectors) == 1
    )


def _selected_read_lines(source: _Source, path: Path) -> list[str]:
    """Lines setting ``values`` as ``path.read`` does for a path whose last step has one
    sibling selector (the first instance whose sibling passes every rule; none when the
    instances and siblings do not pair up), and ``value`` to it."""
    tree = source.tree(path.root)
    kind = "kind" + tree
    selector = path.steps[-1].selectors[0]
    names = source.name("path", path.names)
    siblings = source.name("path", (*path.names[:-1], selector.sibling))
    tests = [f"{source.name('rule', rule.passes)}(text)" for rule in selector.rules] or ["True"]
    return [
        f"if {kind} == {READ_MEMO}:",
        f"{_INDENT}values = {tree}.cache.get({names})",
        f"{_INDENT}if values is None:",
        f"{_INDENT * 2}values = {_memo_miss(tree, names)}",
        "else:",
        f"{_INDENT}values = {tree}.get({names}) if {tree} is not None else None",
        "if values:",
        f"{_INDENT}if {kind} == {READ_MEMO}:",
        f"{_INDENT * 2}siblings = {tree}.cache.get({siblings})",
        f"{_INDENT * 2}if siblings is None:",
        f"{_INDENT * 3}siblings = {_memo_miss(tree, siblings)}",
        f"{_INDENT}else:",
        f"{_INDENT * 2}siblings = {tree}.get({siblings})",
        f"{_INDENT}picked = None",
        f"{_INDENT}if len(siblings) == len(values):",
        f"{_INDENT * 2}for position, value in enumerate(siblings):",
        f"{_INDENT * 3}text = {VALUE_AS_TEXT}",
        f"{_INDENT * 3}if {' and '.join(tests)}:",
        f"{_INDENT * 4}picked = [values[position]]",
        f"{_INDENT * 4}break",
        f"{_INDENT}values = picked",
        f"{_INDENT}if values:",
        f"{_INDENT * 2}value = values[0]",
    ]


def _whole_numbers(literals: tuple[str, ...]) -> list[int] | None:
    """The literals as ints when every one is a whole number (an int compares with them as
    with their Decimal), else None."""
    numbers: list[int] = []
    for literal in literals:
        number = number_or_none(literal)
        if number is None or number != number.to_integral_value():
            return None
        numbers.append(int(number))
    return numbers


def _build(lines: list[str], source: _Source, label: str) -> Any:
    """The function the first line defines, compiled with ``source``'s names as globals."""
    namespace = dict(source.names)
    code = compile("\n".join(lines) + "\n", f"<compiled {label}>", "exec")
    exec(code, namespace)  # our own generated text, built from parsed templates
    return namespace[lines[0].removeprefix("def ").partition("(")[0]]


def _field_body(source: _Source, depth: int, item: Field) -> None:
    """The lines for one field whose filters passed (blocker aside)."""
    path = item.path
    if item.type in (NONE, REMOVE, REMOVE_ALL) or path is None:
        source.add(depth, f"apply_one({source.name('field', item)}, trees, processor, timezone)")
        return
    tag = source.name("tag", item.tag)
    target = "w" + source.tree(path.root)
    write = [
        f"if {target} is None:",
        f"{_INDENT}raise field_error({source.name('text', f'no writable tree {path.root}')}, "
        f"processor, {tag})",
    ]
    name = top_name(item)
    if name is not None:  # as the field's own set_top writer
        write.append(f"{target}.nodes[{name!r}] = [value]")
    else:
        write += [
            "try:",
            f"{_INDENT}{source.name('writer', item.writer)}({target}, value)",
            "except IndexError as exc:",
            f"{_INDENT}raise field_error(str(exc), processor, {tag}) from None",
        ]
    constant = _constant(item)
    if constant is not None:
        source.add(depth, f"value = {source.name('constant', constant[0])}")
        for line in write:
            source.add(depth, line)
        return
    missing = _plain_read(item)
    if missing is not None:
        _inline_read(source, depth, item, tag, missing, write)
        return
    reader = item.reader
    if reader is not None:
        read = f"{source.name('reader', reader)}(trees)"
    else:
        read = f"{source.name('evaluator', item.evaluator)}(trees, timezone)"
    source.add(depth, "try:")
    source.add(depth + 1, f"value = {read}")
    _read_errors(source, depth, item, tag, "pass")
    source.add(depth, "else:")
    for line in write:
        source.add(depth + 1, line)


def _read_errors(source: _Source, depth: int, item: Field, tag: str, optional: str) -> None:
    """The ``except`` clauses of a field's read, as apply_one has them; ``optional`` is the
    statement run for an absent value of an optional field."""
    source.add(depth, "except NotFoundError as missing:")
    if item.mandatory:
        source.add(
            depth + 1,
            f'raise field_error(f"mandatory value missing: {{missing}}", processor, {tag}, '
            "str(missing)) from None",
        )
    else:
        source.add(depth + 1, optional)
    source.add(depth, "except (ValueError, ArithmeticError) as exc:")
    source.add(depth + 1, f"raise field_error(str(exc), processor, {tag}) from None")


def _inline_read(
    source: _Source, depth: int, item: Field, tag: str, missing: str, write: list[str]
) -> None:
    """A text field that is one reference (``~*req.Session-Id``, also with a selector,
    ``s///`` rules or converters): the tree's values read in line, then each rule (its memo
    probed in line) and converter as the segment's compiled reader applies them; an absent
    optional value skips the field without raising."""
    segment = item.value.segments[0]
    path = segment.path
    assert path is not None
    source.add(depth, "try:")
    if path.plain and not (path.names and path.names[-1] == LENGTH):
        for line in _read_lines(source, path.root, path.names):
            source.add(depth + 1, line)
    elif _last_step_selected(path):
        for line in _selected_read_lines(source, path):
            source.add(depth + 1, line)
    else:  # other selectors or an index: the path's own read
        source.add(depth + 1, f"values = {source.name('read', path.read)}(trees)")
        source.add(depth + 1, "if values:")
        source.add(depth + 2, "value = values[0]")
    source.add(depth + 1, "if values:")
    if segment.rules:
        source.add(depth + 2, f"text = {VALUE_AS_TEXT}")
        for rule in segment.rules:
            memo, apply = source.name("memo", rule.memo), source.name("rule", rule.apply)
            source.add(depth + 2, f"value = {memo}.get(text)")
            source.add(depth + 2, "if value is None:")
            source.add(depth + 3, f"value = {apply}(text)")
            source.add(depth + 2, "text = value")
    for converter in segment.converters:
        source.add(depth + 2, f"value = {source.name('convert', converter)}(value)")
    source.add(depth + 2, f"value = {VALUE_AS_TEXT}")
    source.add(depth + 1, "else:")
    source.add(depth + 2, "values = None")
    _read_errors(source, depth, item, tag, "values = None")
    source.add(depth, "if values is not None:")
    for line in write:
        source.add(depth + 1, line)
    if item.mandatory:
        text = source.name("text", f"mandatory value missing: {missing}")
        source.add(depth, "else:")
        path_text = source.name("text", missing)
        source.add(depth + 1, f"raise field_error({text}, processor, {tag}, {path_text})")


def _constant(item: Field) -> tuple[str] | None:
    """The value of a text field that reads nothing, when it can be computed at load (a value
    too wide for its field is not: it fails per request, as before)."""
    if item.reader is None or not item.value.is_constant:
        return None
    try:
        value = item.reader({})
    except ValueError:
        return None
    return (value,) if isinstance(value, str) else None


def _plain_read(item: Field) -> str | None:
    """The missing-path text of a text field without width that is one reference, whatever
    its rules and converters (what ``_inline_read`` compiles); None otherwise."""
    if item.type not in STRING_TYPES or item.width or item.reader is None:
        return None
    segments = item.value.segments
    if len(segments) != 1:
        return None
    path = segments[0].path
    return None if path is None else path.text
