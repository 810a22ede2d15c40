"""The Direct security & trust agent: addresses, certificate discovery, trust, S/MIME, MDN and SMTP.

This package knows nothing about FHIR or Flask (see docs/architecture.md): it takes bytes, addresses and
certificates and gives back bytes, verdicts and errors from :mod:`direct.errors`.
"""
