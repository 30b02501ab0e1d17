"""AttributeS: alter events (aliases, number normalisation, passwords, tenants) with the best
matching attribute profile, as CGRateS's AttributeSv1.ProcessEvent.

    attributes = AttributeService(filters, default_tenant="cgrates.org")
    loader.add_listener(attributes)
    reply = attributes.process_event(event, context="*sessions")
"""

from core.attributes.service import (
    DEFAULT_PROCESS_RUNS,
    META_DEFAULT,
    OPTS_CONTEXT,
    AttributeSError,
    AttributeService,
    CompiledProfile,
    ProcessReply,
    compile_profile,
    effective_contexts,
    inline_profile,
    process_runs_of,
    profile_ids_of,
    rules_of,
)
from core.attributes.types import MissingField, TypeSettings, compile_type

__all__ = [
    "DEFAULT_PROCESS_RUNS",
    "META_DEFAULT",
    "OPTS_CONTEXT",
    "AttributeSError",
    "AttributeService",
    "CompiledProfile",
    "MissingField",
    "ProcessReply",
    "TypeSettings",
    "compile_profile",
    "compile_type",
    "effective_contexts",
    "inline_profile",
    "process_runs_of",
    "profile_ids_of",
    "rules_of",
]
