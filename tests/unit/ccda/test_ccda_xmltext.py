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


def test_wrap_closes_in_reverse_order_with_escaped_attributes() -> None:
    wrap = xt.Wrap(("entry", {"typeCode": "DRIV"}), ("act", {"note": 'a"<b'}), first="<templateId/>")
    parent: list[object] = ["<before/>"]
    with wrap.into(parent) as kids:
        kids.append("<id/>")
        xt.element(kids, "code", {"code": "x"})  # a Node among the strings is serialised too
    assert parent == [
        "<before/>",
        '<entry typeCode="DRIV"><act note="a&quot;&lt;b"><templateId/><id/><code code="x"/></act></entry>',
    ]
    etree.fromstring(parent[1])  # well-formed


def test_wrap_writes_nothing_when_its_block_raises() -> None:
    wrap = xt.Wrap(("performer", None))
    parent: list[object] = []
    with pytest.raises(TypeError), wrap.into(parent) as kids:
        kids.append("<assignedEntity>")  # half-written content ...
        xt.leaf("name", None, 42)  # type: ignore[arg-type]  # ... then a malformed value
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
