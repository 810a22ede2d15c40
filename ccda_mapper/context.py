"""State shared by the section mappers while one document is built."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import datatypes as dt
from . import xmltext as xt
from .index import Index, Resource

_Element = dt.Node
#: What a malformed resource can make the mappers raise (wrong JSON types where FHIR has structure).
_DATA_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError)
_PEOPLE = ("Practitioner", "PractitionerRole")
_AUTHOR = xt.Wrap(("author", None), first=dt.template_xml("2.16.840.1.113883.10.20.22.4.119"))
_WHO_ORDER = ("recorder", "requester", "asserter", "author", "performer")
_WHO_FIELDS = frozenset(_WHO_ORDER)
_TIME_FIELDS = (
    "issued",
    "recordedDate",
    "recorded",
    "authoredOn",
    "date",
    "effectiveDateTime",
    "occurrenceDateTime",
    "performedDateTime",
    "effectivePeriod",
    "performedPeriod",
    "period",
)


@dataclass
class Ctx:
    """The index, the skipped-list and the facts several sections need (who the author is, the time)."""

    index: Index
    now: str  # HL7 TS of the document
    author_seed: str = "bbdirect"
    _entities: dict[tuple[int, str], tuple[Resource, str]] = field(default_factory=dict)
    _roles: dict[int, Resource] | None = None

    def role_of(self, prac: Resource) -> Resource | None:
        """The first PractitionerRole of the input that points at this Practitioner (its specialty is the
        provider taxonomy code an author or performer SHOULD carry, CONF:1098-31671)."""
        if self._roles is None:
            self._roles = {}
            for role in self.index.of("PractitionerRole"):
                target = self.index.resolve(role.get("practitioner"), role)
                if target is not None:
                    self._roles.setdefault(id(target), role)
        return self._roles.get(id(prac))  # every resource outlives the build: id() is unambiguous here

    def entity_xml(self, res: Resource, tag: str, make: Callable[[], _Element]) -> str:
        """The element ``make()`` builds for (resource, tag), built and serialised only once per document:
        people and places recur in many entries, and reusing the finished text is far cheaper than a rebuild
        from the dict."""
        key = (id(res), tag)
        cached = self._entities.get(key)
        if cached is None or cached[0] is not res:
            cached = (res, make().serialize())
            self._entities[key] = cached
        return cached[1]

    @property
    def skipped(self) -> list[str]:
        return self.index.skipped

    def each(
        self, rtype: str | list[Resource], fn: Callable[[Resource], Any], undo: Sequence[dt.Parent] = ()
    ) -> list[Any]:
        """Run ``fn`` on every resource of a type (or of an already filtered list); a resource that breaks
        the mapper is skipped with the reason, never the whole document (one bad resource must not stop the
        record from being sent).

        Whatever ``fn`` had already added under the ``undo`` elements (the section, its table body) is
        removed, so a half-built entry never reaches the document.
        """
        out = []
        for res in self.index.of(rtype) if isinstance(rtype, str) else rtype:
            r = self.guard(res, fn, undo)
            if r is not None:
                out.append(r)
        return out

    def guard(self, res: Resource, fn: Callable[[Resource], Any], undo: Sequence[dt.Parent] = ()) -> Any:
        """``fn(res)``; None with ``res`` listed as skipped (its partial XML removed) when it breaks."""
        marks = tuple(map(len, undo))
        try:
            return fn(res)
        except _DATA_ERRORS as exc:
            for e, mark in zip(undo, marks, strict=True):
                del e[mark:]
            self.index.skip(res, f"not mapped ({type(exc).__name__}: {str(exc)[:80]})")
            return None

    def author(self, parent: dt.Parent, time: Any, res: Resource | None = None) -> None:
        """Author Participation (2.16.840.1.113883.10.20.22.4.119), when a Practitioner can be named.

        Only the resource's own recorder/requester/asserter/author/performer is used.  Nothing is inferred
        (not even the encounter's clinician): no resolvable practitioner, no author element (a SHOULD; an
        inferred author would only trade that warning for "author SHOULD have a taxonomy code" and cost about
        a third of the document's elements).
        """
        if res is None:
            return
        who = self._who(res)  # usually absent: ask first, it is the cheaper test
        if who is None:
            return
        t = dt.ts(time) or self._time_of(res)
        if not t:
            return
        # a TS holds digits, '.', '+' and '-' only: nothing to escape
        parent.append(_AUTHOR.around(f'<time value="{t}"/>' + practitioner_xml(self, who, "assignedAuthor")))

    def _who(self, res: Resource) -> Resource | None:
        if _WHO_FIELDS.isdisjoint(res):  # the usual case: the resource names nobody
            return None
        for fld in _WHO_ORDER:
            ref = res.get(fld)
            if isinstance(ref, list):
                ref = ref[0] if ref else None
            if isinstance(ref, dict) and "actor" in ref:
                ref = ref.get("actor")
            target = self.index.resolve(ref, res) if ref is not None else None
            if target is not None and target.get("resourceType") in _PEOPLE:
                return target
        return None

    @staticmethod
    def _time_of(res: Resource) -> str | None:
        for f in _TIME_FIELDS:
            v = res.get(f)
            if isinstance(v, dict):
                v = v.get("start")
            t = dt.ts(v)
            if t:
                return t
        return None


def practitioner_entity(ctx: Ctx, parent: dt.Parent, who: Resource, tag: str) -> None:
    """Append :func:`practitioner_xml` to ``parent``."""
    parent.append(practitioner_xml(ctx, who, tag))


def practitioner_xml(ctx: Ctx, who: Resource, tag: str) -> str:
    """``<tag>`` (assignedAuthor / assignedEntity) for a Practitioner or PractitionerRole: id (NPI when
    known), code (NUCC from PractitionerRole), addr, telecom, assignedPerson.

    The same clinician appears in many entries (every author, every performer): the element is built once per
    resource and tag, then its finished text is reused (looked up first: most calls are repeats).
    """
    cached = ctx._entities.get((id(who), tag))
    if cached is not None and cached[0] is who:
        return cached[1]

    def make() -> _Element:
        el = dt.Node(tag)
        _practitioner_elements(ctx, el, who)
        return el

    return ctx.entity_xml(who, tag, make)


def _practitioner_elements(ctx: Ctx, parent: _Element, who: Resource) -> None:
    prac = who
    role = None
    if who.get("resourceType") == "PractitionerRole":
        role = who
        prac = ctx.index.resolve(who.get("practitioner"), who) or {}
    dt.identifiers(parent, prac or who, ctx.index.key(who))
    # a Practitioner referenced directly takes its taxonomy code from a PractitionerRole of the input
    coded = role if role is not None else ctx.role_of(who)
    if coded is not None:
        for spec in dt.lst(coded.get("specialty")) or dt.lst(coded.get("code")):
            if isinstance(spec, dict):
                dt.cd(parent, "code", spec, prefer=("2.16.840.1.113883.6.101",), text=False)
                break
    dt.addrs(parent, (prac or {}).get("address"))
    dt.telecom(parent, (prac or {}).get("telecom") or (role or {}).get("telecom"))
    p = dt.el(parent, "assignedPerson")
    dt.person_name(p, dt.best_name((prac or {}).get("name")))
