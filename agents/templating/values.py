"""Value expressions: ``~*req.CC-Time:s/(.*)/${1}s/{*duration_seconds&*round:2};literal``.

Parsed once at load into segments; evaluating walks the parsed form only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from agents.templating.converters import Converter, parse_converter
from agents.templating.errors import NotFoundError, TemplateError
from agents.templating.paths import LENGTH, Path, as_text, parse_path
from agents.templating.trees import RequestTree

SEGMENT_SEP: Final = ";"
QUOTE: Final = "`"  # `a;b` is one literal segment, as CGRateS's unsplit syntax
REFERENCE: Final = "~"
CONVERTERS_START: Final = "{*"
CONVERTERS_END: Final = "}"
CONVERTER_SEP: Final = "&"
SEARCH_REPLACE: Final = ":s/"
SEARCH_REPLACE_MEMO_MAX: Final = 1024  # results remembered per s/// rule
_GO_GROUP: Final = re.compile(r"\$(?:\{(\w+)\}|(\w+)|(\$))")


# One piece of an expansion template: literal text, or a group reference (number or name).
TemplatePart = tuple[bool, str | int]


@dataclass(frozen=True, slots=True)
class SearchReplace:
    """``s/pattern/template/``: on a match the value becomes the expanded template (Go
    ``${1}``/``$name`` syntax); without a match it is left as it is (CGRateS semantics).
    The template is pre-split so no string is parsed per request."""

    pattern: re.Pattern[str]
    parts: tuple[TemplatePart, ...]
    # Results by input text: the same few values come back request after request ("60" ->
    # "60s"), and a regex search costs ~10x a dict probe. Bounded: cleared when full.
    memo: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def apply(self, text: str) -> str:
        found = self.memo.get(text)
        if found is not None:
            return found
        match = self.pattern.search(text)
        if match is None:
            result = text
        else:
            result = "".join(
                [
                    (match.group(part) or "") if is_group else str(part)
                    for is_group, part in self.parts
                ]
            )
        if len(self.memo) >= SEARCH_REPLACE_MEMO_MAX:
            self.memo.clear()
        self.memo[text] = result
        return result


def parse_search_replace(rule: str) -> SearchReplace:
    """Parses ``pattern/template/`` (what follows ``:s/``)."""
    if not rule.endswith("/") or rule.endswith("\\/"):
        raise TemplateError(f"search&replace {rule!r} must end with /")
    body = rule[:-1]
    split = _last_unescaped_slash(body)
    if split <= 0:
        raise TemplateError(f"search&replace {rule!r} needs pattern/replacement/")
    pattern_text, template = body[:split].replace("\\/", "/"), body[split + 1 :]
    try:
        pattern = re.compile(pattern_text)
    except re.error as exc:
        raise TemplateError(f"bad regex {pattern_text!r}: {exc}") from None
    return SearchReplace(pattern, _template_parts(template, pattern))


def _last_unescaped_slash(text: str) -> int:
    position = len(text) - 1
    while position >= 0:
        if text[position] == "/" and (position == 0 or text[position - 1] != "\\"):
            return position
        position -= 1
    return -1


def _template_parts(template: str, pattern: re.Pattern[str]) -> tuple[TemplatePart, ...]:
    parts: list[TemplatePart] = []
    last = 0
    for match in _GO_GROUP.finditer(template):
        if match.start() > last:
            parts.append((False, template[last : match.start()]))
        if match.group(3):
            parts.append((False, "$"))
        else:
            name = match.group(1) or match.group(2)
            if name.isdigit():
                if int(name) > pattern.groups:
                    raise TemplateError(f"group ${name} not in regex {pattern.pattern!r}")
                parts.append((True, int(name)))
            elif name not in pattern.groupindex:
                raise TemplateError(f"group ${{{name}}} not in regex {pattern.pattern!r}")
            else:
                parts.append((True, name))
        last = match.end()
    if last < len(template):
        parts.append((False, template[last:]))
    return tuple(parts)


# Compiled forms: a value expression becomes one closure over the trees at load, so a
# request pays no dispatch on segment kinds, path shapes, rules or converters.
Trees = Mapping[str, RequestTree]
Reader = Callable[[Trees], Any]
TextReader = Callable[[Trees], str]


@dataclass(frozen=True, slots=True)
class Segment:
    """One ``;``-separated part: a reference (``path``) or a literal (``constant``), then
    search&replace rules, then converters."""

    path: Path | None
    constant: str
    rules: tuple[SearchReplace, ...] = ()
    converters: tuple[Converter, ...] = ()
    # Derived at construction: the compiled readers (value, and value as text).
    value_of: Reader = field(init=False, repr=False, compare=False)
    text_of: TextReader = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        value_of = _compile_segment(self)
        object.__setattr__(self, "value_of", value_of)
        object.__setattr__(self, "text_of", _compile_text(self, value_of))

    def value(self, trees: Trees) -> Any:
        """The converted value; NotFoundError when a referenced path has none."""
        return self.value_of(trees)

    def text(self, trees: Trees) -> str:
        return self.text_of(trees)


def _compile_segment(segment: Segment) -> Reader:
    path = segment.path
    base: Reader
    if path is None:
        constant = segment.constant

        def base(trees: Trees) -> Any:
            return constant

    elif path.plain and not (path.names and path.names[-1] == LENGTH):
        root, names, missing = path.root, path.names, path.text

        def base(trees: Trees) -> Any:
            tree = trees.get(root)
            if tree is not None:
                values = tree.get(names)
                if values:
                    return values[0]
            raise NotFoundError(missing)

    else:
        read, missing = path.read, path.text

        def base(trees: Trees) -> Any:
            found = read(trees)
            if not found:
                raise NotFoundError(missing)
            return found[0]

    rules, converters = segment.rules, segment.converters
    if not rules and not converters:
        return base

    def converted(trees: Trees) -> Any:
        value = base(trees)
        if rules:
            text = as_text(value)
            for rule in rules:
                text = rule.apply(text)
            value = text
        for convert in converters:
            value = convert(value)
        return value

    return converted


def _compile_text(segment: Segment, value_of: Reader) -> TextReader:
    path = segment.path
    if segment.rules or segment.converters:
        pass
    elif path is None:
        constant = segment.constant
        return lambda trees: constant
    elif path.plain and not (path.names and path.names[-1] == LENGTH):
        # The commonest field of all, ``~*req.Session-Id``: one read, no further calls.
        root, names, missing = path.root, path.names, path.text

        def read_text(trees: Trees) -> str:
            tree = trees.get(root)
            if tree is not None:
                values = tree.get(names)
                if values:
                    value = values[0]
                    return value if type(value) is str else as_text(value)
            raise NotFoundError(missing)

        return read_text

    def text_of(trees: Trees) -> str:
        value = value_of(trees)
        return value if type(value) is str else as_text(value)

    return text_of


@dataclass(frozen=True, slots=True)
class Value:
    """A parsed value expression: its segments, concatenated as text when evaluated."""

    segments: tuple[Segment, ...]
    source: str = ""
    # Derived at construction: the whole expression's text as one closure.
    text_of: TextReader = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text_of", _compile_value(self.segments))

    @property
    def is_constant(self) -> bool:
        return all(segment.path is None for segment in self.segments)

    def paths(self) -> list[Path]:
        return [segment.path for segment in self.segments if segment.path is not None]

    def text(self, trees: Trees) -> str:
        return self.text_of(trees)


def _compile_value(segments: tuple[Segment, ...]) -> TextReader:
    if not segments:
        return lambda trees: ""
    if len(segments) == 1:
        return segments[0].text_of
    if all(s.path is None and not s.rules and not s.converters for s in segments):
        constant = "".join(s.constant for s in segments)
        return lambda trees: constant
    readers = tuple(segment.text_of for segment in segments)
    return lambda trees: "".join([read(trees) for read in readers])


def parse_value(text: str) -> Value:
    """Parses a value expression; raises TemplateError (and nothing else) on bad syntax."""
    if not isinstance(text, str):
        raise TemplateError(f"value must be a string, not {type(text).__name__}")
    if text == "":
        return Value((), text)
    return Value(tuple(parse_segment(part) for part in split_segments(text)), text)


def split_segments(text: str) -> list[str]:
    """Splits on ``;`` outside backquotes (a backquoted part stays one literal)."""
    if QUOTE not in text:
        return text.split(SEGMENT_SEP)
    if text.count(QUOTE) % 2:
        raise TemplateError(f"unclosed ` in value {text!r}")
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == QUOTE:
            quoted = not quoted
            current.append(char)
        elif char == SEGMENT_SEP and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_segment(text: str) -> Segment:
    if text == "":
        raise TemplateError("empty segment in value (stray ;)")
    if len(text) >= 2 and text[0] == QUOTE and text[-1] == QUOTE:
        return Segment(None, text[1:-1])
    converters: tuple[Converter, ...] = ()
    start = text.find(CONVERTERS_START)
    if start != -1:
        if not text.endswith(CONVERTERS_END):
            raise TemplateError(f"converters in {text!r} must end the segment with }}")
        definitions = text[start + 1 : -1].split(CONVERTER_SEP)
        converters = tuple(parse_converter(definition) for definition in definitions)
        text = text[:start]
    if not text.startswith(REFERENCE) or len(text) == 1:
        if QUOTE in text:
            raise TemplateError(f"misplaced ` in {text!r}")
        return Segment(None, text, (), converters)
    path_text, *rules = text[1:].split(SEARCH_REPLACE)
    path = parse_path(path_text)
    return Segment(path, "", tuple(parse_search_replace(rule) for rule in rules), converters)
