"""FilterS: CGRateS filters (inline and stored profiles) over events, plus the CGREvent shape and
the data provider (``~*req.``/``~*opts.``/``~*vars.`` paths) the other subsystems share.

    filters = FilterService(destination_ids_from(lambda: rater.destinations))
    loader.add_listener(filters)
    event = CGREvent.from_wire(params, default_tenant="cgrates.org")
    filters.passes(event.tenant, ("*string:~*req.Account:1001", "FLTR_DST"), event.view())
"""

from core.filters.errors import FilterError
from core.filters.event import (
    META_OPTS,
    META_REQ,
    META_TENANT,
    META_VARS,
    MISSING,
    CGREvent,
    EventView,
    Path,
    parse_path,
)
from core.filters.index import CandidateIndex, string_condition
from core.filters.rules import CompiledFilter, FilterEnv, compile_inline, is_active
from core.filters.service import (
    FilterService,
    check_filter_ids,
    compile_profile,
    destination_ids_from,
)

__all__ = [
    "META_OPTS",
    "META_REQ",
    "META_TENANT",
    "META_VARS",
    "MISSING",
    "CGREvent",
    "CandidateIndex",
    "CompiledFilter",
    "EventView",
    "FilterEnv",
    "FilterError",
    "FilterService",
    "Path",
    "check_filter_ids",
    "compile_inline",
    "compile_profile",
    "destination_ids_from",
    "is_active",
    "parse_path",
    "string_condition",
]
