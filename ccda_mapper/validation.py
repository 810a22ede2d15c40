"""Built-in C-CDA R2.1 validator: CDA XML Schema (with SDTC extensions) + HL7's C-CDA R2.1 Schematron.

Why it is built in: a document we transmit over Direct is read by a clinician's EHR; one that breaks a SHALL
rule may be rejected or silently mangled there. ``bbdirect ccda --validate`` and the tests run the same
official artefacts the ONC/HL7 validators use (copied verbatim in ``schemas/``, see ``schemas/SOURCES.md``).

How it works:

1. XML Schema: ``schemas/xsd/infrastructure/cda/CDA_SDTC.xsd`` through libxml2 (lxml).
2. Schematron: the ISO Schematron file is compiled once to an SVRL-producing XSLT 1.0 stylesheet with the
   ISO "skeleton" stylesheets bundled in :mod:`lxml.isoschematron` (include -> abstract expansion -> XSLT).
   The skeleton's output walks the whole document once per pattern; it is rewritten to visit only each
   pattern's rule contexts (:func:`_select_rule_contexts`: same report, ~20x faster on large documents).
   Compiling takes a second, so the stylesheet is cached on disk in a per-user cache directory, keyed by
   everything that changes its content (so a stale file is never used). It runs with SaxonC-HE
   (``saxonche``) when installed -- several times faster per document -- and with libxslt otherwise; both
   give the same findings.
3. Severity: the HL7 file puts each pattern in exactly one of two phases, ``errors`` (SHALL) and ``warnings``
   (SHOULD); a failed assert takes the severity of its pattern's phase unless the assert carries a role.

Input documents are parsed without network access, DTD loading or entity expansion: they come from outside
(a FHIR server, a user's file) and must never make us read local files or fetch URLs (XXE).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from lxml import etree
from lxml import isoschematron as iso  # type: ignore[attr-defined]  # not in lxml-stubs 0.5

from .safexml import has_doctype, safe_parser

_log = logging.getLogger(__name__)

SCHEMAS = Path(__file__).resolve().parent / "schemas"
XSD_PATH = SCHEMAS / "xsd" / "infrastructure" / "cda" / "CDA_SDTC.xsd"
SCH_PATH = SCHEMAS / "schematron" / "ccda-r2.1.sch"

_SCH_NS = {"sch": "http://purl.oclc.org/dsdl/schematron"}
_SVRL = "{http://purl.oclc.org/dsdl/svrl}"
#: Bump when the compilation below changes, so every cached stylesheet is rebuilt.
_COMPILER_VERSION = "bbdirect-2"
_XSL = "{http://www.w3.org/1999/XSL/Transform}"
#: Environment variable that overrides where the compiled stylesheet is cached.
CACHE_ENV = "BBDIRECT_CCDA_CACHE"

#: Corrections applied in memory to the HL7 Schematron before compiling (the shipped file stays verbatim).
#: assert id -> (text as shipped, corrected text). A fix applies only while the shipped text is still there,
#: so an upstream correction makes the entry a no-op.
ERRATA: dict[str, tuple[str, str]] = {
    # HL7's 2025-07-25 edit (Jira CDA-20068) of CONF:1098-28042 (Self-Care Activities) wrote
    # ``cda:value[xsi:type='CD']`` -- a child *element* named xsi:type -- instead of the attribute
    # ``@xsi:type``, so every Self-Care Activities observation fails, the IG's own example CCD included.
    "a-1098-28042": ("cda:value[xsi:type='CD']", "cda:value[@xsi:type='CD']"),
}


class ValidatorSetupError(RuntimeError):
    """The validator itself cannot run (schema files missing, no writable cache, broken XSLT engine).

    Distinct from a document having errors: callers must not report an unvalidated document as valid.
    """

    code = "CCDA_VALIDATOR_SETUP"


@dataclass(frozen=True)
class Issue:
    """One finding. ``source`` is ``"xml"`` (not well-formed / forbidden construct), ``"xsd"`` or
    ``"schematron"``; ``rule`` is the Schematron assert id (e.g. ``a-1198-5268``) when there is one."""

    source: str
    message: str
    line: int | None = None
    rule: str | None = None
    location: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "line ?"
        rule = f" {self.rule}" if self.rule else ""
        return f"[{self.source}{rule}] ({where}) {self.message}"


@dataclass
class ValidationReport:
    """Result of :func:`validate`. ``ok`` means no XSD error and no Schematron error (warnings allowed,
    as in the ONC validator)."""

    xsd_errors: list[Issue] = field(default_factory=list)
    schematron_errors: list[Issue] = field(default_factory=list)
    schematron_warnings: list[Issue] = field(default_factory=list)
    engine: str = ""

    @property
    def ok(self) -> bool:
        return not self.xsd_errors and not self.schematron_errors

    @property
    def errors(self) -> list[Issue]:
        return [*self.xsd_errors, *self.schematron_errors]

    def summary(self) -> str:
        verdict = "valid" if self.ok else "INVALID"
        return (
            f"{verdict}: {len(self.xsd_errors)} XSD errors, {len(self.schematron_errors)} Schematron errors, "
            f"{len(self.schematron_warnings)} warnings"
        )

    def to_dict(self) -> dict[str, Any]:
        def issues(items: list[Issue]) -> list[dict[str, Any]]:
            return [{k: v for k, v in vars(i).items() if v is not None} for i in items]

        return {
            "ok": self.ok,
            "engine": self.engine,
            "xsd_errors": issues(self.xsd_errors),
            "schematron_errors": issues(self.schematron_errors),
            "schematron_warnings": issues(self.schematron_warnings),
        }


# --------------------------------------------------------------------------------------------- cache --
def cache_dirs() -> Iterator[Path]:
    """Candidate directories for the compiled stylesheet, most preferred first."""
    if os.environ.get(CACHE_ENV):
        yield Path(os.environ[CACHE_ENV])
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    yield base / "bbdirect" / "ccda-schematron"
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    yield Path(tempfile.gettempdir()) / f"bbdirect-ccda-schematron-{uid}"


def _elements(node: etree._Element | etree._ElementTree, path: str, **variables: Any) -> list[etree._Element]:
    """The elements an XPath selects (``xpath()`` is typed as any XPath result: number, string, nodes)."""
    result = node.xpath(path, **variables)
    return [n for n in result if isinstance(n, etree._Element)] if isinstance(result, list) else []


def _load_schematron() -> tuple[etree._ElementTree, list[str]]:
    """Parse the .sch and apply :data:`ERRATA`; returns the tree and the assert ids actually corrected."""
    tree = etree.parse(str(SCH_PATH), safe_parser())
    fixed: list[str] = []
    for assert_id, (shipped, corrected) in ERRATA.items():
        for node in _elements(tree, "//sch:assert[@id=$id]", namespaces=_SCH_NS, id=assert_id):
            test = node.get("test", "")
            if shipped in test:
                node.set("test", test.replace(shipped, corrected))
                fixed.append(assert_id)
    return tree, fixed


def _cache_key(direct: bool) -> str:
    digest = hashlib.sha256()
    for part in (
        b"direct" if direct else b"skeleton",
        SCH_PATH.read_bytes(),
        SCH_PATH.as_uri().encode(),  # the stylesheet's xml:base points here (for document('voc.xml'))
        repr(sorted(ERRATA.items())).encode(),
        etree.__version__.encode(),  # the skeleton stylesheets ship with lxml
        _COMPILER_VERSION.encode(),
    ):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:20]


def _split_union(pattern: str) -> list[str]:
    """Top-level branches of an XSLT match pattern ``a | b[x|y] | c`` -> ``['a', 'b[x|y]', 'c']``."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(pattern):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(pattern[start:i].strip())
            start = i + 1
    parts.append(pattern[start:].strip())
    return [p for p in parts if p]


def _select_rule_contexts(xslt: etree._ElementTree) -> None:
    """Rewrite the skeleton's stylesheet so each pattern visits only the nodes its rules match.

    Why: the skeleton walks the *whole* document once per pattern (433 patterns here) with template
    dispatch on every element and attribute, and walks it once more per pattern in the default mode for no
    output -- about 13 s for a 1 MB CCD even with Saxon. Here, per pattern mode, the walk from ``/`` becomes
    ``apply-templates`` on the union of the rule contexts (``//context``), in document order, and the rule
    templates stop recursing. Each selected node still gets the highest-priority rule of its pattern (the
    skeleton's priorities are untouched), in the same order as before, so the SVRL is the same; the
    equivalence is checked by a test on conforming and non-conforming documents.
    """
    root = xslt.getroot()
    templates = [t for t in root if t.tag == _XSL + "template"]
    contexts: dict[str, list[str]] = {}
    for t in templates:
        mode = t.get("mode") or ""
        if not re.fullmatch(r"M\d+", mode):
            continue
        if t.get("match") in ("text()", "@*|node()"):  # the skeleton's fallbacks
            for child in list(t):
                t.remove(child)  # nothing is visited without a rule any more
            continue
        for branch in _split_union(t.get("match", "")):
            contexts.setdefault(mode, []).append(branch if branch.startswith("/") else "//" + branch)
        for call in t.iter(_XSL + "apply-templates"):
            if call.get("select") == "@*|*" and call.get("mode") == mode:
                _drop(call)
    main = next(t for t in templates if t.get("match") == "/" and not t.get("mode"))
    for call in list(main.iter(_XSL + "apply-templates")):
        call_mode = call.get("mode")
        if call_mode is None and call.get("select") is None:
            _drop(call)  # default-mode walk inside <svrl:active-pattern>: outputs nothing
        elif call_mode in contexts and call.get("select") == "/":
            call.set("select", " | ".join(contexts[call_mode]))
        elif call_mode is not None and re.fullmatch(r"M\d+", call_mode):
            _drop(call)  # a pattern without rules


def _drop(node: etree._Element) -> None:
    parent = node.getparent()
    if parent is not None:
        parent.remove(node)


def _compile(sch: etree._ElementTree, direct: bool = True) -> bytes:
    """ISO pipeline: dsdl include -> abstract-pattern expansion -> SVRL XSLT 1.0 stylesheet; ``direct``
    applies :func:`_select_rule_contexts`."""
    expanded = iso.iso_abstract_expand(iso.iso_dsdl_include(sch))
    params = iso.stylesheet_params(phase="#ALL", **{"generate-fired-rule": "false"})
    xslt = iso.iso_svrl_for_xslt1(expanded, **params)
    if direct:
        _select_rule_contexts(xslt)
    # The rules read value sets with document('voc.xml'), resolved against the stylesheet's base URI:
    # pin it to the .sch location so the cached copy works from any directory.
    xslt.getroot().set("{http://www.w3.org/XML/1998/namespace}base", SCH_PATH.as_uri())
    return etree.tostring(xslt, xml_declaration=True, encoding="UTF-8")


def compiled_stylesheet(direct: bool = True) -> Path:
    """Path of the compiled Schematron stylesheet, compiling and caching it on first use. ``direct=False``
    gives the skeleton's stylesheet unchanged (slow; kept to prove the rewrite changes nothing)."""
    name = f"ccda-r2.1.{'direct' if direct else 'skeleton'}.{_cache_key(direct)}.xsl"
    data: bytes | None = None
    for directory in cache_dirs():  # the first directory that has it or can take it wins
        if (directory / name).is_file():
            return directory / name
        try:
            directory.mkdir(parents=True, exist_ok=True)
            if not os.access(directory, os.W_OK):
                continue
            if data is None:
                data = _compile(_load_schematron()[0], direct)
            fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, directory / name)  # atomic: a concurrent process never reads half a file
            return directory / name
        except OSError:
            continue
    raise ValidatorSetupError(f"no writable cache directory for the compiled schematron (set {CACHE_ENV})")


# ---------------------------------------------------------------------------------------- engines --
class _SchematronEngine:
    """Runs the compiled stylesheet; ``run(root)`` returns the SVRL report root element."""

    name: str

    def run(self, root: etree._Element) -> etree._Element:  # pragma: no cover - interface
        raise NotImplementedError


class _LibxsltEngine(_SchematronEngine):
    def __init__(self, stylesheet: Path) -> None:
        ac = etree.XSLTAccessControl(  # type: ignore[call-arg]  # lxml-stubs 0.5 lists no keywords
            read_network=False, write_file=False, create_dir=False, write_network=False
        )
        self._xslt = etree.XSLT(etree.parse(str(stylesheet)), access_control=ac)
        self.name = f"libxslt (lxml {etree.__version__})"

    def run(self, root: etree._Element) -> etree._Element:
        return self._xslt(root.getroottree()).getroot()


class _SaxonEngine(_SchematronEngine):
    def __init__(self, stylesheet: Path) -> None:
        import saxonche  # optional dependency

        self._proc = saxonche.PySaxonProcessor(license=False)
        self._exe = self._proc.new_xslt30_processor().compile_stylesheet(stylesheet_file=str(stylesheet))
        self.name = str(self._proc.version)

    def run(self, root: etree._Element) -> etree._Element:
        # Serialise the root *element* (never a DOCTYPE), so Saxon's own parser has nothing to expand.
        node = self._proc.parse_xml(xml_text=etree.tostring(root, encoding="unicode"))
        svrl = self._exe.transform_to_string(xdm_node=node)
        return etree.fromstring(svrl.encode("utf-8"), safe_parser())


def _make_engine(engine: str, stylesheet: Path) -> _SchematronEngine:
    if engine not in ("auto", "saxon", "libxslt"):
        raise ValueError(f"unknown engine {engine!r}")
    if engine in ("auto", "saxon"):
        try:
            return _SaxonEngine(stylesheet)
        except ImportError:
            if engine == "saxon":
                raise ValidatorSetupError("saxonche is not installed") from None
        except Exception as exc:  # a broken SaxonC install must not disable validation in "auto"
            if engine == "saxon":
                raise ValidatorSetupError(f"Saxon cannot run the schematron: {exc}") from exc
            _log.warning("Saxon unavailable (%s); validating with libxslt", type(exc).__name__)
    return _LibxsltEngine(stylesheet)


# ------------------------------------------------------------------------------------- validation --
_XPATH_STEP = re.compile(r"\*:?\[local-name\(\)='([^']*)'(?: and namespace-uri\(\)='([^']*)')?\]")
_NS_PREFIX = {"urn:hl7-org:v3": "", "urn:hl7-org:sdtc": "sdtc:", "": ""}


def _short_location(location: str) -> str:
    """Readable SVRL location: ``/*[local-name()='ClinicalDocument' and ...]`` -> ``/ClinicalDocument``."""

    def step(m: re.Match[str]) -> str:
        ns = m.group(2) or ""
        return _NS_PREFIX.get(ns, f"{{{ns}}}") + m.group(1)

    return _XPATH_STEP.sub(step, location)


def _line_of(root: etree._Element, location: str) -> int | None:
    if not location:
        return None
    try:
        hits = root.getroottree().xpath(location)
    except (etree.XPathError, TypeError):
        return None
    if not isinstance(hits, list) or not hits:
        return None
    node: Any = hits[0]  # an element, or an attribute value (a string that knows its parent)
    if getattr(node, "is_attribute", False):
        node = node.getparent()
    return getattr(node, "sourceline", None)


class Validator:
    """XSD + Schematron validator. Building one costs seconds (Saxon compile, or Schematron compile on a
    cold cache); reuse it -- :func:`validate` keeps a shared instance. Safe to call from several threads."""

    def __init__(self, engine: str = "auto", *, direct: bool = True) -> None:
        try:
            self._schema = etree.XMLSchema(etree.parse(str(XSD_PATH), safe_parser()))
            self._stylesheet = compiled_stylesheet(direct)
            sch, self.errata_applied = _load_schematron()
        except (OSError, etree.LxmlError) as exc:
            raise ValidatorSetupError(f"cannot load the C-CDA schemas: {exc}") from exc
        self._warning_patterns = {
            a.get("pattern")
            for a in _elements(sch, "sch:phase[@id='warnings']/sch:active", namespaces=_SCH_NS)
        }
        self._engine = _make_engine(engine, self._stylesheet)
        self._lock = threading.Lock()  # XMLSchema error logs and the Saxon executable are not re-entrant

    @property
    def engine(self) -> str:
        return self._engine.name

    def _is_warning(self, pattern: str | None, node: etree._Element) -> bool:
        role = (node.get("role") or node.get("flag") or "").lower()
        if role in ("error", "fatal"):
            return False
        if role in ("warning", "warn", "info", "information"):
            return True
        return pattern in self._warning_patterns

    def validate(self, xml: bytes) -> ValidationReport:
        report = ValidationReport(engine=self.engine)
        if isinstance(xml, str):
            xml = xml.encode("utf-8")
        try:
            root = etree.fromstring(xml, safe_parser())
        except etree.XMLSyntaxError as exc:
            report.xsd_errors.append(Issue("xml", f"not well-formed XML: {exc}", line=exc.lineno))
            return report
        if has_doctype(root):
            # CDA documents never need a DTD; one in a received or generated document is a sign of an
            # entity-expansion attempt. Entities were not expanded (and libxml2's schema validator cannot
            # handle the unexpanded references), so the document is rejected before any further check.
            report.xsd_errors.append(Issue("xml", "a document type declaration (DOCTYPE) is not allowed", 1))
            return report
        with self._lock:
            self._schema.validate(root)
            log = self._schema.error_log
            errors = cast("Iterable[Any]", log)  # _ErrorLog is iterable at run time; lxml-stubs 0.5 says not
            report.xsd_errors.extend(Issue("xsd", e.message, line=e.line) for e in errors)
            svrl = self._engine.run(root)
        pattern: str | None = None
        for node in svrl:
            if node.tag == _SVRL + "active-pattern":
                pattern = node.get("id")
                continue
            if node.tag not in (_SVRL + "failed-assert", _SVRL + "successful-report"):
                continue
            location = node.get("location") or ""
            issue = Issue(
                "schematron",
                " ".join((node.findtext(_SVRL + "text") or "").split()),
                line=_line_of(root, location),
                rule=node.get("id") or pattern,
                location=_short_location(location) or None,
            )
            if self._is_warning(pattern, node):
                report.schematron_warnings.append(issue)
            else:
                report.schematron_errors.append(issue)
        return report


_shared: Validator | None = None
_shared_lock = threading.Lock()


def get_validator() -> Validator:
    """The process-wide validator, built on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Validator()
        return _shared


def validate(xml: bytes) -> ValidationReport:
    """Validate one C-CDA document against the CDA SDTC XSD and the HL7 C-CDA R2.1 Schematron."""
    return get_validator().validate(xml)


def main(argv: list[str] | None = None) -> int:
    """``python -m ccda_mapper.validation FILE...``: exit 0 when every file is valid, 1 otherwise."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m ccda_mapper.validation FILE.xml [...]", file=sys.stderr)
        return 2
    status = 0
    for name in args:
        report = validate(Path(name).read_bytes())
        for kind, issues in (("error", report.errors), ("warning", report.schematron_warnings)):
            for issue in issues:
                print(f"{name}: {kind} {issue}")
        print(f"{name}: {report.summary()}")
        status = status or (0 if report.ok else 1)
    return status


if __name__ == "__main__":
    sys.exit(main())
