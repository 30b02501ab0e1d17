"""Diameter agent: ``codec`` (bytes ⇄ lazy messages ⇄ trees, pure) and ``transport``
(asyncio RFC 6733 peer: CER/CEA, DWR/DWA, DPR/DPA, dispatch to a handler)."""
