"""ChargerS: fork an event into charging runs (``*default``, ``*raw``...), as CGRateS's
ChargerSv1.ProcessEvent.

    chargers = ChargerService(filters, attributes, default_tenant="cgrates.org")
    loader.add_listener(chargers)
    runs = chargers.process(event)
"""

from core.chargers.service import (
    META_CHARGERS,
    RUN_ID,
    ChargerRun,
    ChargerSError,
    ChargerService,
)

__all__ = [
    "META_CHARGERS",
    "RUN_ID",
    "ChargerRun",
    "ChargerSError",
    "ChargerService",
]
