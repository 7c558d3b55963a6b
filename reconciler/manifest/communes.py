"""French departments of postal codes, and of a few communes.

A French postal code starts with the number of its department. That is two digits
in mainland France, and 20 for both Corsican departments (2A and 2B). Overseas it is
three digits: 971 to 976, and 986 to 988 for Wallis-et-Futuna, French Polynesia and
New Caledonia. Some communes have the postal code of a distribution office in a
neighbouring department, so a postal code is checked against its commune only for
the communes in ``COMMUNE_DEPARTMENTS``: each has a name no other French commune
has, and all its postal codes start with its department's number.
"""

from __future__ import annotations

import re
import unicodedata

CORSICA_DEPARTMENTS = frozenset({"2A", "2B"})
_MAINLAND = frozenset(f"{number:02d}" for number in range(1, 96)) - {"20"}
_OVERSEAS = frozenset({"971", "972", "973", "974", "975", "976", "986", "987", "988"})

COMMUNE_DEPARTMENTS: dict[str, str] = {
    "ajaccio": "2A",
    "anglet": "64",
    "bastia": "2B",
    "bayonne": "64",
    "biarritz": "64",
    "bordeaux": "33",
    "calvi": "2B",
    "ciboure": "64",
    "corte": "2B",
    "hendaye": "64",
    "lille": "59",
    "lyon": "69",
    "marseille": "13",
    "montpellier": "34",
    "nantes": "44",
    "nice": "06",
    "paris": "75",
    "pau": "64",
    "porto vecchio": "2A",
    "rennes": "35",
    "saint jean de luz": "64",
    "strasbourg": "67",
    "toulouse": "31",
    "urrugne": "64",
}

# "Paris 15e Arrondissement", "Lyon 3e", "Marseille 1er": the arrondissement
# doesn't change the department.
_ARRONDISSEMENT = re.compile(r"\s+\d{1,2}\s*(e|er|eme)?(\s+arrondissement)?$")
# Spaces, apostrophes, and hyphens including the Unicode dashes U+2010 to U+2015.
_SEPARATORS = re.compile("[\\s'\u2019\u2010-\u2015-]+")


def departments_of_postal_code(postal_code: str) -> frozenset[str]:
    """Return the departments a five-digit postal code can belong to.

    Returns an empty set when the code starts with no department's number.
    """
    if postal_code[:2] == "20":
        return CORSICA_DEPARTMENTS
    if postal_code[:2] in _MAINLAND:
        return frozenset({postal_code[:2]})
    if postal_code[:3] in _OVERSEAS:
        return frozenset({postal_code[:3]})
    return frozenset()


def postal_prefix_of(department: str) -> str:
    """Return the digits the postal codes of ``department`` start with."""
    return "20" if department in CORSICA_DEPARTMENTS else department


def department_of_commune(city: str) -> str | None:
    """Return the department of the commune named ``city``, if it is listed.

    Case, accents, hyphens, apostrophes and an arrondissement number are ignored.
    """
    return COMMUNE_DEPARTMENTS.get(fold_commune_name(city))


def fold_commune_name(city: str) -> str:
    """Return ``city`` in the form ``COMMUNE_DEPARTMENTS`` keys are written in."""
    decomposed = unicodedata.normalize("NFKD", city)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    spaced = _SEPARATORS.sub(" ", plain.casefold()).strip()
    spaced = re.sub(r"^st ", "saint ", spaced)
    return _ARRONDISSEMENT.sub("", spaced)
