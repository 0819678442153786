"""Messages to and from citizens: one outbound queue for every SMS the system sends, the gateways
(SMPP 3.4, an HTTP aggregator, a development file), delivery receipts, retries, opt-out, and the
inbound short code's store and rate limit (issue 11).

Sits above ``payments/`` and ``programs/`` (it composes pickup and payment-credited messages from
their rows, set-based) and below ``citizen/``, which answers what citizens text: the gateway hands
an inbound text to a handler it is given, never importing the module that answers it.
"""
