"""The one error protocol: what every domain error of the project carries, whichever package raised it.

A domain error has a stable machine ``code`` (stored with a failed job, answered by the API, chosen by a
page), a human ``message`` without PHI or keys, ``transient`` (True when trying again later may succeed:
the pipeline retries those and stops on the others) and an optional machine-readable ``detail`` (e.g. an
SMTP reply or an OperationOutcome code; never PHI).

Why a Protocol and not one shared base class: ``direct`` and ``ccda_mapper`` are libraries that never import
``fhir_bridge`` (nor each other, docs/architecture.md), so their bases (``direct.errors.DirectError``,
``ccda_mapper.errors.CcdaMapperError``) declare the same four attributes themselves; the sidecar's own
errors share :class:`BridgeError`. ``tests/unit/test_error_protocol.py`` checks that every base satisfies
:class:`DomainError`, and mypy checks the assignments at the bottom of this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable


@runtime_checkable
class DomainError(Protocol):
    """Structural type of every domain error (read-only: callers never change an error)."""

    @property
    def code(self) -> str: ...

    @property
    def message(self) -> str: ...

    @property
    def transient(self) -> bool: ...

    @property
    def detail(self) -> str | None: ...


class BridgeError(Exception):
    """Base of the sidecar's own errors. ``code`` is stable; ``message`` is for people (no PHI, no keys)."""

    code: str = "bridge_error"
    #: True when trying again later may succeed.
    transient: bool = False

    def __init__(self, message: str | None = None, *, code: str | None = None, detail: str | None = None):
        self.message: str = message or (type(self).__doc__ or type(self).__name__).strip().splitlines()[0]
        if code:
            self.code = code
        #: Extra machine-readable detail; never PHI.
        self.detail: str | None = detail
        super().__init__(self.message)


if TYPE_CHECKING:  # mypy proves that each library's base satisfies the protocol (no runtime cost)
    from ccda_mapper.errors import CcdaMapperError
    from direct.errors import DirectError

    def _direct(e: DirectError) -> DomainError:
        return e

    def _ccda_mapper(e: CcdaMapperError) -> DomainError:
        return e

    def _bridge(e: BridgeError) -> DomainError:
        return e
