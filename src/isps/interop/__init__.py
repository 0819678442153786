"""Interoperability: NSER Plus kept current by other registries.

``interop.feeds`` applies deliveries from NADRA, utilities, telcos, Excise, land records,
payrolls, NGOs/RSPs/MFIs and banks to the registry with provenance; ``interop.feeds.changes``
holds change requests (maker-checker) and re-certification; ``interop.dci`` serves the DCI
Social Registry API to partners. This package sits above
``registry`` and ``targeting``: it may import them, never ``api``, ``web`` or ``cli``.
"""
