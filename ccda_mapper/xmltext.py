"""A small XML writer that produces escaped text instead of a tree.

Why: a CCD has 5 000 to 30 000 elements and ``lxml.etree.SubElement`` costs about 1.5 µs each (a C node,
a Python proxy, a namespace lookup), about half of the whole build.  Most elements are leaves (templateId,
id, code, statusCode, effectiveTime bounds, values) that nobody touches after they are written, so they are
appended to their parent as finished strings; only elements that receive children later are :class:`Node`
objects.  The document is then one ``"".join``: no parse, no tree walk in C.

Every element is closed by construction: a leaf is one finished string (:func:`leaf`, :func:`wrapped`), a
:class:`Node` writes its own end tag, and an entry written as text goes through a :class:`Wrap`, whose end
tags are derived from its start tags and written only by its ``close_into`` (a resource that breaks
half-way leaves nothing behind).  No caller writes an end tag by hand.

Safety: every attribute value and every text goes through :func:`attr` / :func:`text` / :func:`attrs` here
(one escape table, the rules of libxml2's serializer, so the output reads back as the same infoset and
canonicalises the same): ``& < >`` and (in attributes) ``"``, line breaks and tabs become character
references, and what XML 1.0 cannot carry (C0 controls other than tab/CR/LF, U+FFFE/U+FFFF, lone
surrogates) is removed.  Element and attribute *names* are constants of this package, never data.  A value
that is not a string raises ``TypeError``, so a malformed resource is skipped by the section guard, never
half-written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Union

# libxml2 xmlEscapeEntities / xmlBufAttrSerializeTxtContent, plus removal of what XML 1.0 forbids (§2.2 Char)
_FORBIDDEN = "\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff"
_TEXT_SPECIAL = re.compile(f"[&<>\r{_FORBIDDEN}]")
_ATTR_SPECIAL = re.compile(f'[&<>"\n\r\t{_FORBIDDEN}]')
_DROP: dict[int, None] = {c: None for c in (*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0xFFFE, 0xFFFF)}
_DROP.update(dict.fromkeys(range(0xD800, 0xE000)))
_TEXT_TABLE = {**_DROP, ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", ord("\r"): "&#13;"}
_ATTR_TABLE = {**_TEXT_TABLE, ord('"'): "&quot;", ord("\n"): "&#10;", ord("\t"): "&#9;"}
_search_text = _TEXT_SPECIAL.search
_search_attr = _ATTR_SPECIAL.search

Kid = Union["Node", str]


def text(value: str) -> str:
    """Character data, escaped (``TypeError`` for a non-string: see the module docstring)."""
    return value.translate(_TEXT_TABLE) if _search_text(value) else value


def attr(value: str) -> str:
    """An attribute value, escaped for a double-quoted attribute (``TypeError`` for a non-string)."""
    return value.translate(_ATTR_TABLE) if _search_attr(value) else value


def attrs(attrib: Mapping[str, str]) -> str:
    """`` name="value"...`` in the mapping's order (names are package constants; values are escaped)."""
    if _search_attr("".join(attrib.values())) is None:  # the usual case: nothing to escape in any value
        return "".join([f' {k}="{v}"' for k, v in attrib.items()])
    return "".join([f' {k}="{attr(v)}"' for k, v in attrib.items()])


def leaf(tag: str, attrib: Mapping[str, str] | None = None, content: str | None = None) -> str:
    """A finished element without children: ``<tag a="v"/>`` or ``<tag a="v">text</tag>``."""
    a = attrs(attrib) if attrib else ""
    if content is None:
        return f"<{tag}{a}/>"
    return f"<{tag}{a}>{text(content)}</{tag}>"


def wrapped(tag: str, attrib: Mapping[str, str] | None, inner: str) -> str:
    """A finished element around finished XML ``inner`` (``<tag a="v"/>`` when ``inner`` is empty)."""
    a = attrs(attrib) if attrib else ""
    return f"<{tag}{a}>{inner}</{tag}>" if inner else f"<{tag}{a}/>"


class Wrap:
    """Nested start tags (outermost first) and an optional constant first child, with the matching end tags
    derived from the same list, so the two cannot disagree.  Built once per module (the strings are
    constants).  ``kids = WRAP.open()`` starts the content; ``WRAP.close_into(parent, kids)`` ends it and
    appends ``start + content + end`` to ``parent``: as one string to a :class:`Node`, as its parts to the
    plain list of an enclosing Wrap (joined once, with that one).  Content reaches the document only
    through ``close_into``: a resource that raises (or returns) half-way leaves nothing behind, never an
    open tag.

    Why not a ``with`` block: its ``__enter__``/``__exit__`` calls cost about 0.45 µs per element, a few per
    cent of a build; ``open``/``close_into`` cost about what two list appends do.
    """

    __slots__ = ("end", "start")

    def __init__(self, *tags: tuple[str, Mapping[str, str] | None], first: str = "") -> None:
        if not tags:
            raise ValueError("a Wrap needs at least one tag")
        self.start = "".join([f"<{tag}{attrs(a) if a else ''}>" for tag, a in tags]) + first
        self.end = "".join([f"</{tag}>" for tag, _ in reversed(tags)])

    def around(self, inner: str) -> str:
        """The finished element around finished XML ``inner`` (content that is one string already)."""
        return self.start + inner + self.end

    def open(self) -> list[Any]:
        """The content list; its first item is this Wrap's start (:meth:`close_into` checks the pairing)."""
        return [self.start]

    def close_into(self, parent: list[Any], kids: list[Any]) -> None:
        """End ``kids`` (opened by this Wrap) and append the finished element to ``parent``."""
        if kids[0] is not self.start:
            raise ValueError("closing content that another Wrap opened")
        kids.append(self.end)
        if parent.__class__ is list:  # the content of an enclosing Wrap: joined once, with it
            parent.extend(kids)
            return
        try:
            parent.append("".join(kids))  # the usual case: only finished strings
        except TypeError:  # a Node among them
            parent.append(_join_nodes(kids))


class Node(list[Any]):
    """An element that can still receive children.  The list items are its children, Nodes and finished XML
    strings in document order (so the undo logic's ``len`` / ``del node[mark:]`` / ``node[-1]`` are plain
    list operations); ``text`` (already escaped) comes before them.  Equality is identity, as for elements.
    """

    __slots__ = ("attrib", "parent", "start", "tag", "text")
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__  # type: ignore[assignment]  # list declares __hash__ None; a Node hashes by id

    def __init__(
        self, tag: str, attrib: Mapping[str, str] | None = None, parent: list[Any] | None = None
    ) -> None:
        super().__init__()
        self.tag = tag
        self.attrib = attrib
        self.start = f"<{tag}{attrs(attrib)}" if attrib else f"<{tag}"
        self.text: str | None = None
        self.parent = parent
        if parent is not None:
            parent.append(self)

    @property
    def kids(self) -> Node:
        return self

    def getparent(self) -> list[Any] | None:
        return self.parent

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.attrib.get(name, default) if self.attrib else default

    def set(self, name: str, value: str) -> None:
        self.attrib = {**(self.attrib or {}), name: value}
        self.start = f"<{self.tag}{attrs(self.attrib)}"

    def find(self, path: str) -> Kid | None:
        """The first child along ``a/b/c`` (local names); a finished leaf matches as its string."""
        node: Kid = self
        for step in path.split("/"):
            if not isinstance(node, Node):
                return None
            found: Kid | None = None
            for k in node:
                if isinstance(k, Node):
                    if k.tag == step:
                        found = k
                        break
                elif k.startswith(f"<{step}") and k[len(step) + 1] in " />":
                    found = k
                    break
            if found is None:
                return None
            node = found
        return node

    def serialize(self) -> str:
        out: list[str] = []
        _write(self, out)
        return "".join(out)


_new_node = list.__new__


def element(
    parent: list[Any], tag: str, attrib: Mapping[str, str] | None = None, content: str | None = None
) -> Node:
    """A child Node of ``parent`` (the hot path: no ``__init__`` frame)."""
    e: Node = _new_node(Node)
    e.tag = tag
    e.attrib = attrib
    e.start = f"<{tag}{attrs(attrib)}" if attrib else f"<{tag}"
    e.text = text(content) if content else None
    e.parent = parent
    parent.append(e)
    return e


def join(parts: list[Any]) -> str:
    """Finished XML from a plain list used as a parent (strings, and Nodes helpers may have added)."""
    try:
        return "".join(parts)  # the usual case: only finished strings
    except TypeError:  # a Node among them
        return _join_nodes(parts)


def _join_nodes(parts: list[Any]) -> str:
    out: list[str] = []
    for k in parts:
        if k.__class__ is str:
            out.append(k)
        else:
            _write(k, out)
    return "".join(out)


def _write(node: Node, out: list[str]) -> None:
    if node:
        out.append(node.start + ">")
        if node.text is not None:
            out.append(node.text)
        for k in node:
            if k.__class__ is str:
                out.append(k)
            else:
                _write(k, out)
        out.append(f"</{node.tag}>")
    elif node.text is not None:
        out.append(f"{node.start}>{node.text}</{node.tag}>")
    else:
        out.append(node.start + "/>")
