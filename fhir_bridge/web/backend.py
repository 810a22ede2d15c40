"""Which :class:`SharingService` the pages talk to.

``fhir_bridge.web.register`` puts the sidecar's one ``Sidecar.sharing`` (the consent service adapted by
``fhir_bridge.consent.sharing.ConsentSharing``, built once by ``fhir_bridge.sidecar.build_sidecar``) in
``app.extensions["bbdirect.sharing"]``; nothing here builds another.
"""

from __future__ import annotations

from flask import Flask

from fhir_bridge.web.sharing import SharingService


class NoSharingService(RuntimeError):
    """The pages were mounted on an app without the sidecar's consent service (a wiring mistake)."""


def sharing_service(app: Flask) -> SharingService:
    service: SharingService | None = app.extensions.get("bbdirect.sharing")
    if service is None:
        raise NoSharingService("the web pages need the sidecar's consent service (use create_app)")
    return service
