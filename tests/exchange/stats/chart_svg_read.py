"""Reading the charts' SVG back: elements by gid, their text, a path's points, a bar's box."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def ids(root: ET.Element, prefix: str) -> list[str]:
    """The gids starting with ``prefix``, in document order."""
    return [e.attrib["id"] for e in root.iter() if e.attrib.get("id", "").startswith(prefix)]


def by_id(root: ET.Element, gid: str) -> ET.Element:
    found = [e for e in root.iter() if e.attrib.get("id") == gid]
    assert len(found) == 1, f"{gid}: {len(found)} elements"
    return found[0]


def text(el: ET.Element) -> str:
    """An element's text; the lines of a multi-line text (one ``<text>`` each) joined by "\\n"."""
    lines = [(t.text or "").strip() for t in el.iter(f"{SVG}text")]
    return "\n".join(lines) if lines else "".join(el.itertext()).strip()


def all_text(root: ET.Element) -> list[str]:
    return [text(t) for t in root.iter(f"{SVG}text")]


def points(group: ET.Element) -> list[tuple[float, float]]:
    """The vertices of the (first) path in a group, in SVG coordinates (y grows downwards)."""
    path = next(group.iter(f"{SVG}path"))
    nums = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", path.attrib["d"])]
    return list(zip(nums[::2], nums[1::2], strict=True))


def fill(group: ET.Element) -> str:
    path = next(group.iter(f"{SVG}path"))
    m = re.search(r"fill: (#[0-9a-f]{6})", path.attrib.get("style", ""))
    assert m, path.attrib
    return m.group(1)


def width(group: ET.Element) -> float:
    xs = [x for x, _ in points(group)]
    return max(xs) - min(xs)
