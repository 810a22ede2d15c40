"""Which :class:`SharingService` the pages talk to.

``create_app`` puts the consent service, adapted by ``fhir_bridge.consent.sharing.ConsentSharing``, in
``app.extensions["bbdirect.sharing"]``; an app that has only the sidecar object gets the same adapter here.
"""

from __future__ import annotations

from flask import Flask

from fhir_bridge.web.sharing import SharingService


class NoSharingService(RuntimeError):
    """The pages were mounted on an app without the sidecar's consent service (a wiring mistake)."""


def sharing_service(app: Flask) -> SharingService:
    service = app.extensions.get("bbdirect.sharing")
    if service is None:
        consent = getattr(app.extensions.get("bbdirect"), "consent", None)
        if consent is None:
            raise NoSharingService("the web pages need the sidecar's consent service (use create_app)")
        from fhir_bridge.consent.sharing import ConsentSharing

        service = app.extensions["bbdirect.sharing"] = ConsentSharing(consent)
    return service
