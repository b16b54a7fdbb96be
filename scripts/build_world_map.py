"""Build ui/static/world-countries.js, the country shapes of the live page's world map.

Run at development time only (`python scripts/build_world_map.py`); Pulse never downloads
anything at run time. The shapes are Natural Earth's 1:110m countries (public domain) as packaged
by the npm package ``world-atlas`` (ISC license); the ISO 3166-1 numeric → alpha-2 table comes
from the npm package ``i18n-iso-countries`` (MIT). Both are fetched with ``npm pack``; the
TopoJSON is decoded here to GeoJSON with each feature's id its alpha-2 code (our events' country)
and ``cp`` the centre of its largest part (where the live map pulses),
coordinates rounded to 0.1° (a small file, still a clear map at dashboard size).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

WORLD_ATLAS = "world-atlas@2.0.2"
ISO_CODES = "i18n-iso-countries@7.14.0"
OUT = Path(__file__).resolve().parent.parent / "ui" / "static" / "world-countries.js"
PREFIX = "window.pulseWorldGeo = "  # a classic script: loaded before the page's charts start
# Shapes Natural Earth has without an ISO numeric code, and the codes their visitors get.
NO_NUMERIC = {"Kosovo": "XK", "N. Cyprus": "CY", "Somaliland": "SO"}

Position = list[float]


def npm_file(package: str, member: str, workdir: Path) -> bytes:
    """One file of an npm package, fetched with `npm pack`."""
    name = subprocess.run(["npm", "pack", "--silent", package], cwd=workdir, check=True,
                          capture_output=True, text=True).stdout.strip().splitlines()[-1]
    with tarfile.open(workdir / name) as archive:
        extracted = archive.extractfile(f"package/{member}")
        assert extracted is not None
        return extracted.read()


def decode_arcs(topology: dict[str, Any]) -> list[list[Position]]:
    """The topology's arcs as absolute longitude/latitude lists (TopoJSON delta-encodes them)."""
    scale = topology["transform"]["scale"]
    translate = topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append([x * scale[0] + translate[0], y * scale[1] + translate[1]])
        arcs.append(points)
    return arcs


def ring(indexes: list[int], arcs: list[list[Position]]) -> list[Position]:
    """A closed ring from arc indexes (a negative index ~i is arc i reversed)."""
    points: list[Position] = []
    for index in indexes:
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        points.extend(arc[1:] if points else arc)
    if any(abs(a[0] - b[0]) > 180 for a, b in zip(points, points[1:], strict=False)):
        # A ring across the antimeridian (Fiji, Russia's far east): keep it in one piece east
        # of 180° instead of a line drawn across the whole flat map.
        points = [[lon + 360 if lon < 0 else lon, lat] for lon, lat in points]
    rounded: list[Position] = []
    for lon, lat in points:
        point = [round(lon, 1), round(lat, 1)]
        if not rounded or rounded[-1] != point:
            rounded.append(point)
    if rounded[0] != rounded[-1]:
        rounded.append(rounded[0])
    return rounded


def build(workdir: Path) -> dict[str, Any]:
    """The GeoJSON FeatureCollection, one feature per country, ids ISO 3166-1 alpha-2."""
    topology = json.loads(npm_file(WORLD_ATLAS, "countries-110m.json", workdir))
    alpha2 = {numeric: a2 for a2, _a3, numeric, *_ in
              json.loads(npm_file(ISO_CODES, "codes.json", workdir))}
    arcs = decode_arcs(topology)
    features = []
    for geometry in topology["objects"]["countries"]["geometries"]:
        name = geometry["properties"]["name"]
        code = alpha2.get(geometry.get("id", ""), NO_NUMERIC.get(name))
        if name == "Antarctica":  # nobody's visitors, a fifth of the map
            continue
        if code is None or geometry["type"] not in ("Polygon", "MultiPolygon"):
            print(f"skipped {name!r}", file=sys.stderr)
            continue
        polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
        shapes = [[ring(r, arcs) for r in polygon] for polygon in polygons]
        shapes = [[r for r in polygon if len(r) >= 4] for polygon in shapes]
        shapes = [polygon for polygon in shapes if polygon]
        largest = max((polygon[0] for polygon in shapes), key=len)
        lons = [p[0] for p in largest]
        lats = [p[1] for p in largest]
        centre = [round((min(lons) + max(lons)) / 2, 1), round((min(lats) + max(lats)) / 2, 1)]
        features.append({"type": "Feature", "id": code,
                         "properties": {"name": name, "code": code, "cp": centre},
                         "geometry": {"type": "MultiPolygon", "coordinates": shapes}})
    return {"type": "FeatureCollection",
            "license": "Natural Earth (public domain) via world-atlas 2.0.2 (ISC)",
            "features": features}


def main() -> None:
    """Write ui/static/world-countries.js."""
    with tempfile.TemporaryDirectory() as workdir:
        collection = build(Path(workdir))
    OUT.write_text(PREFIX + json.dumps(collection, separators=(",", ":")) + ";\n")
    print(f"{OUT}: {len(collection['features'])} countries, {OUT.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
