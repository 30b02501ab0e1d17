"""Loading and validating template files once, at start-up."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path as FilePath
from typing import Any, Final

import yaml

from agents.templating.applying import FieldList, FilterList, compile_fields, compile_filters
from agents.templating.builtins import BUILTIN_TEMPLATES
from agents.templating.errors import NotFoundError, TemplateError
from agents.templating.fields import Field, TemplateRef, parse_field
from agents.templating.filters import Filter, parse_filter
from agents.templating.flags import CallPlan, Flags, call_plan, parse_flags
from agents.templating.paths import as_text
from agents.templating.values import Value, parse_value
from core.types import InvalidValue, zone

DEFAULT_TENANT: Final = "cgrates.org"
# Trees every agent has; agents add their own request-side trees via ``extra_trees``.
READ_ONLY_TREES: Final = frozenset({"*req", "*oreq"})
WRITABLE_TREES: Final = frozenset(
    {"*cgreq", "*cgrep", "*rep", "*opts", "*vars", "*tmp", "*diamreq", "*radDAReq"}
)
DOCUMENT_KEYS: Final = frozenset({"request_processors", "templates"})
PROCESSOR_KEYS: Final = frozenset(
    {"id", "filters", "flags", "tenant", "timezone", "request_fields", "reply_fields"}
)
YAML_SUFFIXES: Final = (".yaml", ".yml")
DICT_SOURCE: Final = "<dict>"

Source = str | os.PathLike[str] | Mapping[str, Any] | Iterable[str | os.PathLike[str]]


@dataclass(frozen=True, slots=True)
class Processor:
    id: str
    filters: tuple[Filter, ...]
    flags: Flags
    tenant: Value | None
    timezone: str
    request_fields: tuple[Field, ...]
    reply_fields: tuple[Field, ...]
    file: str = ""
    # Derived at construction: the main SessionSv1 call the flags ask for (None: no call).
    call: CallPlan | None = field(init=False, repr=False, compare=False)
    # Derived at construction: the filters and both field lists compiled (agents.templating.
    # applying), each doing what passes_filters / apply_fields do.
    passes: FilterList = field(init=False, repr=False, compare=False)
    apply_request: FieldList = field(init=False, repr=False, compare=False)
    apply_reply: FieldList = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "call", call_plan(self.flags))
        label = f"processor {self.id}"
        object.__setattr__(self, "passes", compile_filters(self.filters, f"{label} filters"))
        object.__setattr__(
            self, "apply_request", compile_fields(self.request_fields, f"{label} request_fields")
        )
        object.__setattr__(
            self, "apply_reply", compile_fields(self.reply_fields, f"{label} reply_fields")
        )


# A processor with the filter function to try it with (all its filters, or those after a
# first filter the gate has already found passing).
Candidate = tuple[Processor, FilterList]


@dataclass(frozen=True, slots=True)
class ProcessorGate:
    """The processors that can match, decided by one read: most processors begin with the
    same ``*string`` filter on a read-only request value (``*string:~*req.CC-Request-Type:2``),
    so for a given text only the processors accepting it, or not beginning with that filter,
    can pass. A processor whose first filter fails checks no other, so skipping it changes
    nothing; one whose first filter the gate found passing is tried with its other filters
    only (the tree read is read-only: a second read gives the same text). A read that fails
    otherwise than with "not found" gives ``None`` (every processor is tried with all its
    filters, and the error is raised where it was)."""

    value_of: Callable[[Mapping[str, Any]], Any]
    by_text: Mapping[str, tuple[Candidate, ...]]
    ungated: tuple[Candidate, ...]  # the processors not beginning with the gate's filter

    def candidates(self, trees: Mapping[str, Any]) -> tuple[Candidate, ...] | None:
        try:
            value = self.value_of(trees)
            text = value if type(value) is str else as_text(value)
        except NotFoundError:
            return self.ungated  # the gate's filter fails on a missing value
        except Exception:
            return None
        return self.by_text.get(text, self.ungated)


def _gate_literals(processor: Processor, read_only: frozenset[str]) -> tuple[Any, frozenset[str]]:
    """The element and accepted texts of a processor's first filter when it can gate: a
    positive ``*string`` on literals reading a read-only tree (no processor can change what
    it reads); (None, empty) otherwise."""
    if not processor.filters:
        return None, frozenset()
    first = processor.filters[0]
    path = first.element.path
    if (
        first.kind != "*string"
        or first.negated
        or path is None
        or path.root not in read_only
        or any(operand.reference is not None for operand in first.operands)
    ):
        return None, frozenset()
    return first.element, frozenset(operand.literal for operand in first.operands)


def processor_gate(
    processors: tuple[Processor, ...], read_only: frozenset[str]
) -> ProcessorGate | None:
    """The gate on the element most processors' first filters read; None when fewer than
    two processors share one."""
    firsts = [_gate_literals(processor, read_only) for processor in processors]
    elements: list[Any] = []
    counts: list[int] = []
    for element, _ in firsts:
        if element is None:
            continue
        if element in elements:
            counts[elements.index(element)] += 1
        else:
            elements.append(element)
            counts.append(1)
    if not counts or max(counts) < 2:
        return None
    gate = elements[counts.index(max(counts))]
    gated = [literals if element == gate else None for element, literals in firsts]
    texts = frozenset().union(*(literals for literals in gated if literals is not None))
    # The filters after the gate's: what is left to check once the gate has read a text
    # the first filter accepts.
    after_gate = {
        index: compile_filters(processor.filters[1:], f"processor {processor.id} filters")
        for index, (processor, literals) in enumerate(zip(processors, gated, strict=True))
        if literals is not None
    }
    by_text = {
        text: tuple(
            (processor, processor.passes if literals is None else after_gate[index])
            for index, (processor, literals) in enumerate(zip(processors, gated, strict=True))
            if literals is None or text in literals
        )
        for text in texts
    }
    ungated = tuple(
        (processor, processor.passes)
        for processor, literals in zip(processors, gated, strict=True)
        if literals is None
    )
    return ProcessorGate(gate.value_of, by_text, ungated)


@dataclass(frozen=True, slots=True)
class Templates:
    """Compiled request processors and named templates (built-ins included)."""

    processors: tuple[Processor, ...]
    templates: Mapping[str, tuple[Field, ...]]
    default_tenant: str = DEFAULT_TENANT
    read_only_trees: frozenset[str] = READ_ONLY_TREES
    writable_trees: frozenset[str] = WRITABLE_TREES
    files: tuple[str, ...] = field(default=())
    # Derived at construction: which processors can match, from one read (None: try all).
    gate: ProcessorGate | None = field(init=False, repr=False, compare=False)
    # Derived at construction: every processor with all its filters (no gate, or no gate read).
    every_candidate: tuple[Candidate, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "gate", processor_gate(self.processors, self.read_only_trees))
        object.__setattr__(self, "every_candidate", tuple((p, p.passes) for p in self.processors))

    def candidates(self, trees: Mapping[str, Any]) -> tuple[Candidate, ...]:
        """The processors, in order, that can pass their filters on ``trees``, each with the
        function checking what is left of its filters."""
        gate = self.gate
        if gate is None:
            return self.every_candidate
        candidates = gate.candidates(trees)
        return self.every_candidate if candidates is None else candidates

    def template(self, name: str) -> tuple[Field, ...]:
        """A named template's fields (e.g. ``*asr`` for an agent building a request)."""
        try:
            return self.templates[name]
        except KeyError:
            raise TemplateError(f"unknown template {name!r}") from None


def load_templates(
    source: Source,
    *,
    default_tenant: str = DEFAULT_TENANT,
    extra_trees: Iterable[str] = (),
) -> Templates:
    """Reads, validates and compiles templates: a mapping (an already parsed document), a
    YAML file, a directory of them (sorted by name) or a list of files/directories.

    Raises TemplateError naming file, processor and field for anything wrong.
    """
    documents = list(_documents(source))
    read_only = READ_ONLY_TREES | frozenset(extra_trees)
    readable = read_only | WRITABLE_TREES
    raw_templates: dict[str, tuple[str, Any]] = {
        name: ("", fields) for name, fields in BUILTIN_TEMPLATES.items()
    }
    for name_of_file, document in documents:
        user_templates = document.get("templates") or {}
        if not isinstance(user_templates, Mapping):
            raise TemplateError("templates must map names to field lists", file=name_of_file)
        for name, fields in user_templates.items():
            raw_templates[str(name)] = (name_of_file, fields)
    resolver = _Resolver(raw_templates, readable)
    templates = {name: resolver.resolve(name) for name in raw_templates}
    processors: list[Processor] = []
    seen: set[str] = set()
    for name_of_file, document in documents:
        raw_processors = document.get("request_processors") or []
        if not isinstance(raw_processors, list):
            raise TemplateError("request_processors must be a list", file=name_of_file)
        for raw in raw_processors:
            processor = _processor(raw, name_of_file, resolver)
            if processor.id in seen:
                raise TemplateError(
                    "duplicate processor id", file=name_of_file, processor=processor.id
                )
            seen.add(processor.id)
            processors.append(processor)
    return Templates(
        tuple(processors),
        templates,
        default_tenant,
        read_only,
        WRITABLE_TREES,
        tuple(name for name, _ in documents),
    )


def _documents(source: Source) -> Iterable[tuple[str, Mapping[str, Any]]]:
    if isinstance(source, Mapping):
        yield DICT_SOURCE, _checked(source, DICT_SOURCE)
        return
    sources = [source] if isinstance(source, str | os.PathLike) else list(source)
    for item in sources:
        path = FilePath(item)
        files = (
            sorted(p for p in path.iterdir() if p.suffix in YAML_SUFFIXES)
            if path.is_dir()
            else [path]
        )
        for file in files:
            try:
                document = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise TemplateError(f"cannot read: {exc}", file=str(file)) from None
            yield str(file), _checked(document, str(file))


def _checked(document: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(document, Mapping):
        raise TemplateError("a template file must be a mapping", file=name)
    unknown = set(document) - DOCUMENT_KEYS
    if unknown:
        raise TemplateError(f"unknown keys {sorted(map(str, unknown))}", file=name)
    return document


class _Resolver:
    """Parses field lists and inlines ``*template`` references (cycles are errors)."""

    def __init__(self, raw: dict[str, tuple[str, Any]], readable: frozenset[str]) -> None:
        self.raw = raw
        self.readable = readable
        self.done: dict[str, tuple[Field, ...]] = {}
        self.active: list[str] = []

    def resolve(self, name: str) -> tuple[Field, ...]:
        if name in self.done:
            return self.done[name]
        if name not in self.raw:
            raise TemplateError(f"unknown template {name!r}")
        if name in self.active:
            raise TemplateError(f"template cycle: {' -> '.join([*self.active, name])}")
        file, raw_fields = self.raw[name]
        self.active.append(name)
        try:
            fields = self.fields(raw_fields)
        except TemplateError as exc:
            raise exc.located(file=file, processor=f"template {name}") from None
        finally:
            self.active.pop()
        self.done[name] = fields
        return fields

    def fields(self, raw_fields: Any) -> tuple[Field, ...]:
        if raw_fields is None:
            return ()
        if not isinstance(raw_fields, list):
            raise TemplateError("fields must be a list")
        out: list[Field] = []
        for raw in raw_fields:
            parsed = parse_field(raw, self.readable, WRITABLE_TREES)
            if isinstance(parsed, TemplateRef):
                try:
                    inlined = self.resolve(parsed.name)
                except TemplateError as exc:
                    if exc.file or exc.processor:  # an error inside that template
                        raise
                    raise exc.located(field=parsed.tag) from None
                # The *template field's own filters guard each inlined field.
                out.extend(
                    _with_filters(item, parsed.filters) if parsed.filters else item
                    for item in inlined
                )
            else:
                out.append(parsed)
        return tuple(out)


def _with_filters(item: Field, filters: tuple[Filter, ...]) -> Field:
    return replace(item, filters=filters + item.filters)


def _processor(raw: Any, file: str, resolver: _Resolver) -> Processor:
    if not isinstance(raw, Mapping):
        raise TemplateError("a request processor must be a mapping", file=file)
    identifier = raw.get("id")
    if not isinstance(identifier, str) or not identifier:
        raise TemplateError("a request processor needs an id", file=file)
    try:
        unknown = set(raw) - PROCESSOR_KEYS
        if unknown:
            raise TemplateError(f"unknown processor keys {sorted(map(str, unknown))}")
        filter_texts = raw.get("filters") or []
        if not isinstance(filter_texts, list):
            raise TemplateError("filters must be a list of strings")
        filters = tuple(parse_filter(text) for text in filter_texts)
        flag_values = raw.get("flags") or []
        if not isinstance(flag_values, list):
            raise TemplateError("flags must be a list")
        flags = parse_flags(flag_values)
        tenant_text = raw.get("tenant")
        tenant = parse_value(str(tenant_text)) if tenant_text else None
        for path in tenant.paths() if tenant else ():
            if path.root not in resolver.readable:
                raise TemplateError(f"unknown tree {path.root} in tenant")
        timezone = str(raw.get("timezone") or "")
        if timezone:
            zone(timezone)
        return Processor(
            identifier,
            filters,
            flags,
            tenant,
            timezone,
            resolver.fields(raw.get("request_fields")),
            resolver.fields(raw.get("reply_fields")),
            file,
        )
    except InvalidValue as invalid:  # one name per type: mypyc types a name once
        raise TemplateError(str(invalid), file=file, processor=identifier) from None
    except TemplateError as exc:
        raise exc.located(file=file, processor=identifier) from None
