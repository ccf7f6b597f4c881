"""A faithful stand-in for LOKE: its OIDC issuer, its platform API and simulated guests.

Product code, not a test double: ``pos-bridge loke-sandbox`` starts it, ``pos-bridge demo``
and the tests use it. What LOKE publishes it follows; what it invents is listed in
``docs/loke-sandbox.md``.
"""
