"""The text writer closes what it opens: a Wrap derives its end tags from its start tags, writes nothing when
its block raises, and no section writes an end tag by hand.  The one safe parser refuses entities and DTDs."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest
from lxml import etree

import ccda_mapper
from ccda_mapper import xmltext as xt
from ccda_mapper.safexml import has_doctype, safe_parser

PACKAGE = Path(ccda_mapper.__file__).resolve().parent


EXPECTED = '<entry typeCode="DRIV"><act note="a&quot;&lt;b"><templateId/><id/><code code="x"/></act></entry>'


def _write_entry(parent: list[object]) -> None:
    wrap = xt.Wrap(("entry", {"typeCode": "DRIV"}), ("act", {"note": 'a"<b'}), first="<templateId/>")
    kids = wrap.open()
    kids.append("<id/>")
    xt.element(kids, "code", {"code": "x"})  # a Node among the strings is serialised too
    wrap.close_into(parent, kids)


def test_wrap_closes_in_reverse_order_with_escaped_attributes() -> None:
    section = xt.Node("section")
    section.append("<before/>")
    _write_entry(section)
    assert list(section) == ["<before/>", EXPECTED]  # one finished string under a Node
    etree.fromstring(EXPECTED)  # well-formed


def test_wrap_inside_a_wrap_is_joined_once_with_it() -> None:
    parts: list[object] = ["<before/>"]
    _write_entry(parts)  # the plain content list of an enclosing Wrap receives the parts
    assert xt.join(parts) == "<before/>" + EXPECTED


def test_a_wrap_closes_only_what_it_opened() -> None:
    performer, participant = xt.Wrap(("performer", None)), xt.Wrap(("participant", None))
    parent: list[object] = []
    kids = performer.open()
    with pytest.raises(ValueError):
        participant.close_into(parent, kids)
    assert parent == []


def test_content_reaches_the_parent_only_when_closed() -> None:
    """A resource that breaks half-way (the section guard catches the error) leaves nothing behind."""
    wrap = xt.Wrap(("performer", None))
    parent: list[object] = []

    def write() -> None:
        kids = wrap.open()
        kids.append("<assignedEntity>")  # half-written content ...
        kids.append(xt.leaf("name", None, 42))  # type: ignore[arg-type]  # ... then a malformed value
        wrap.close_into(parent, kids)

    with pytest.raises(TypeError):
        write()
    assert parent == []


def test_wrap_needs_a_tag() -> None:
    with pytest.raises(ValueError):
        xt.Wrap()


def test_wrapped_is_empty_element_without_content() -> None:
    assert xt.wrapped("code", {"code": "1"}, "") == '<code code="1"/>'
    assert xt.wrapped("code", None, "<translation/>") == "<code><translation/></code>"


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (n.lineno, n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def test_no_section_writes_an_end_tag_by_hand() -> None:
    """End tags come from xmltext (Wrap, wrapped, leaf, Node) only; a literal ``</x>`` in a section or in the
    author code would be a tag closed by hand again."""
    files = [*sorted((PACKAGE / "sections").glob("*.py")), PACKAGE / "context.py", PACKAGE / "header.py"]
    found = [
        f"{f.name}:{line}: {value!r}"
        for f in files
        for line, value in _string_constants(f)
        if "</" in value and not value.lstrip().startswith(('"""', "'''")) and "\n" not in value
    ]
    assert found == []


def test_validate_is_a_plain_function_even_after_the_module_is_imported() -> None:
    importlib.import_module("ccda_mapper.validation")
    assert inspect.isfunction(ccda_mapper.validate)
    assert inspect.isfunction(ccda_mapper.render_html)


def test_safe_parser_does_not_expand_entities_or_read_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    doc = (f'<!DOCTYPE x [<!ENTITY e SYSTEM "file://{secret}"><!ENTITY i "inner">]><x>&e;&i;</x>').encode()
    root = etree.fromstring(doc, safe_parser())
    assert has_doctype(root)
    assert "TOP-SECRET" not in etree.tostring(root).decode() and "inner" not in (root.text or "")
    assert not has_doctype(etree.fromstring(b"<x/>", safe_parser()))
    assert safe_parser() is not safe_parser()  # one per call: lxml parsers are not shared across threads
