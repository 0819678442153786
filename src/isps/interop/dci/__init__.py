"""The DCI (Digital Convergence Initiative) Social Registry API v1.0.0 over the ISPS registry.

``envelope`` checks the ``{signature, header, message}`` envelope against the spec itself,
``signing`` signs and verifies messages, ``partners`` holds partners, their keys, data-sharing
agreements and consents and issues OAuth2 client-credential tokens, ``search`` answers searches
set-based, ``transactions`` keeps every transaction for status checks, and ``subscriptions``
turns registry outbox events into notifications. ``api/dci.py`` is the thin HTTP adapter.
"""
