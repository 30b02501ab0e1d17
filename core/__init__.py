"""chargeflow's charging engine."""

from core._native import prefer_sources_when_asked

prefer_sources_when_asked()  # CHARGEFLOW_PURE=1: plain Python even where compiled copies exist
