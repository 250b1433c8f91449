"""Word lists and string makers for the demo ERP world: company names, addresses and sanctions near misses.

Every word here was written for holdcast; none comes from a real customer list. Names are built from
invented brand words, common trade words and surnames, with the legal form usual in the customer's
country, so a screening run against the sanctions list sees ordinary names that rarely resemble a
listed party, plus the near misses this module makes on purpose.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BRAND_WORDS = (
    "Alpenrose", "Arcwell", "Aurora", "Baltica", "Beacon", "Birchfield", "Bluewater", "Brightline",
    "Cedarpoint", "Clearbrook", "Cobalt", "Copperleaf", "Crestmoor", "Dunmore", "Eastgate", "Elbtal",
    "Emberly", "Fairhaven", "Fernhill", "Fjordline", "Foxglove", "Glenrock", "Goldcrest", "Granite",
    "Greenfield", "Harbourside", "Hawthorn", "Highmark", "Ironbridge", "Juniper", "Kestrel", "Lakeview",
    "Larchwood", "Linden", "Lodestar", "Maple", "Meridian", "Millbrook", "Moorland", "Northbridge",
    "Oakridge", "Orchard", "Pinecrest", "Quarry", "Redwood", "Riverbend", "Rosewood", "Saltmarsh",
    "Silverline", "Skyward", "Southmead", "Stonebridge", "Summit", "Thornbury", "Tidewater", "Upland",
    "Valemont", "Westbrook", "Willowdale", "Windmere",
)  # fmt: skip

TRADE_WORDS = (
    "Tooling", "Fasteners", "Hydraulics", "Packaging", "Components", "Electrics", "Machining", "Foods",
    "Logistics", "Builders", "Plastics", "Textiles", "Motors", "Instruments", "Supplies", "Coatings",
    "Ceramics", "Timber", "Paper", "Metals", "Pumps", "Valves", "Robotics", "Optics", "Printing",
    "Furniture", "Dairy", "Bakeries", "Medical", "Lighting", "Cables", "Bearings", "Filters",
)  # fmt: skip

SURNAMES = (
    "Albrecht", "Bauer", "Becker", "Berg", "Brandt", "Carter", "Dubois", "Eriksson", "Fischer", "Fontaine",
    "Garcia", "Girard", "Hartmann", "Hughes", "Jansen", "Keller", "Kowalski", "Kraus", "Lambert", "Larsen",
    "Lehmann", "Lindqvist", "Lopez", "Marino", "Martin", "Meyer", "Moreau", "Morgan", "Nowak", "Olsen",
    "Peters", "Ricci", "Roux", "Schmitt", "Schneider", "Sorensen", "Stewart", "Thompson", "Vogel",
    "Wagner", "Walsh", "Weber", "Wilson", "Wolff", "Ziegler",
)  # fmt: skip

LEGAL_FORMS: dict[str, tuple[str, ...]] = {
    "DE": ("GmbH", "GmbH & Co. KG", "AG"),
    "AT": ("GmbH", "AG"),
    "CH": ("AG", "GmbH", "SA"),
    "FR": ("SAS", "SARL", "SA"),
    "NL": ("B.V.", "N.V."),
    "BE": ("BV", "SA"),
    "GB": ("Ltd", "Limited", "PLC"),
    "IE": ("Ltd", "Limited"),
    "US": ("Inc.", "LLC", "Corp."),
    "IT": ("S.p.A.", "S.r.l."),
    "ES": ("S.L.", "S.A."),
    "PL": ("Sp. z o.o.", "S.A."),
    "SE": ("AB",),
    "DK": ("A/S", "ApS"),
}
DEFAULT_LEGAL_FORMS = ("Ltd", "LLC")

CITIES: dict[str, tuple[str, ...]] = {
    "DE": ("Hamburg", "Bremen", "Koeln", "Stuttgart", "Leipzig", "Hannover", "Nuernberg", "Dortmund"),
    "AT": ("Wien", "Graz", "Linz"),
    "CH": ("Zuerich", "Basel", "Bern"),
    "FR": ("Lyon", "Lille", "Nantes", "Toulouse", "Bordeaux"),
    "NL": ("Rotterdam", "Utrecht", "Eindhoven", "Groningen"),
    "BE": ("Antwerpen", "Gent", "Liege"),
    "GB": ("Leeds", "Bristol", "Sheffield", "Manchester", "Glasgow"),
    "IE": ("Dublin", "Cork", "Galway"),
    "US": ("Columbus", "Denver", "Atlanta", "Portland", "Charlotte", "Milwaukee"),
    "IT": ("Torino", "Bologna", "Verona", "Brescia"),
    "ES": ("Valencia", "Zaragoza", "Bilbao", "Sevilla"),
    "PL": ("Poznan", "Wroclaw", "Gdansk", "Lodz"),
    "SE": ("Goeteborg", "Malmoe", "Uppsala"),
    "DK": ("Aarhus", "Odense", "Aalborg"),
}
DEFAULT_CITIES = ("Central District", "Harbour District", "Industrial Zone", "Free Zone")

STREET_WORDS = (
    "Industrial", "Harbour", "Market", "Mill", "Station", "Bridge", "Canal", "Church", "Park", "Forest",
    "Meadow", "Quarry", "Orchard", "Commerce", "Foundry",
)  # fmt: skip
STREET_KINDS = ("Street", "Road", "Way", "Lane", "Avenue", "Park")

_LEGAL_ENDINGS = frozenset(
    {"LTD", "LTD.", "LLC", "LIMITED", "CO", "CO.", "INC", "INC.", "JSC", "S.A.", "GMBH", "FZE", "CORP."}
)
# Legal forms a near miss may put at the end of a listed name.
NEAR_MISS_SUFFIXES = ("LTD", "LLC", "LIMITED", "CO", "GMBH", "INC", "TRADING LLC", "GROUP")


def _pick(rng: np.random.Generator, words: tuple[str, ...], n: int) -> np.ndarray:
    return np.asarray(words, dtype=object)[rng.integers(0, len(words), n)]


def _per_country(
    rng: np.random.Generator,
    countries: np.ndarray,
    table: dict[str, tuple[str, ...]],
    default: tuple[str, ...],
) -> np.ndarray:
    """One word per row from the country's list, drawn for all rows of a country at once."""
    out = np.empty(len(countries), dtype=object)
    for country in np.unique(countries):
        rows = np.flatnonzero(countries == country)
        out[rows] = _pick(rng, table.get(str(country), default), len(rows))
    return out


def company_names(rng: np.random.Generator, countries: np.ndarray) -> np.ndarray:
    """Ordinary company names, one per country code given.

    Three shapes, mixed: "<Brand> <Trade> <form>", "<Surname> <Trade> <form>" and
    "<Surname> & <Surname> <form>"; the legal form is one used in the country.
    """
    n = len(countries)
    brand = _pick(rng, BRAND_WORDS, n)
    trade = _pick(rng, TRADE_WORDS, n)
    first = _pick(rng, SURNAMES, n)
    second = _pick(rng, SURNAMES, n)
    form = _per_country(rng, countries, LEGAL_FORMS, DEFAULT_LEGAL_FORMS)
    shape = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    stem = np.select(
        [shape == 0, shape == 1], [brand + " " + trade, first + " " + trade], first + " & " + second
    )
    return (stem + " " + form).astype(object)


def addresses(rng: np.random.Generator, countries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """City, street and postcode per country code given; postcodes follow the country's usual shape."""
    n = len(countries)
    city = _per_country(rng, countries, CITIES, DEFAULT_CITIES)
    number = pd.Series(rng.integers(1, 240, n)).astype(str).to_numpy(dtype=object)
    street = _pick(rng, STREET_WORDS, n) + " " + _pick(rng, STREET_KINDS, n) + " " + number
    digits5 = pd.Series(rng.integers(10000, 99999, n)).astype(str).to_numpy(dtype=object)
    digits4 = pd.Series(rng.integers(1000, 9999, n)).astype(str).to_numpy(dtype=object)
    letters = np.asarray(list("ABDEFGHJLNPRSTUWXYZ"), dtype=object)
    pair = letters[rng.integers(0, len(letters), n)] + letters[rng.integers(0, len(letters), n)]
    other_pair = letters[rng.integers(0, len(letters), n)] + letters[rng.integers(0, len(letters), n)]
    digit = np.asarray(list("123456789"), dtype=object)[rng.integers(0, 9, n)]
    british = pair + digit + " " + digit + other_pair
    postcode = np.select(
        [countries == "NL", countries == "GB", np.isin(countries, ("AT", "CH", "BE", "DK"))],
        [digits4 + " " + pair, british, digits4],
        default=digits5,
    )
    return city.astype(object), street.astype(object), postcode.astype(object)


def _typo(rng: np.random.Generator, name: str) -> str:
    """One keyboard slip inside a word of four letters or more: swap, drop, double or replace."""
    positions = [i for i in range(1, len(name) - 1) if name[i].isalpha() and name[i + 1].isalpha()]
    if not positions:
        return name + name[-1]
    i = positions[rng.integers(0, len(positions))]
    kind = rng.integers(0, 4)
    if kind == 0:
        out = name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    elif kind == 1:
        out = name[:i] + name[i + 1 :]
    elif kind == 2:
        out = name[:i] + name[i] + name[i:]
    else:
        vowels = "AEIOU" if name[i].isupper() else "aeiou"
        out = name[:i] + vowels[rng.integers(0, 5)] + name[i + 1 :]
    # A replacement can land on the same letter, or a swap on a double letter; a slip must change the name.
    return out if out != name else name[:i] + name[i + 1 :]


def _swap_words(rng: np.random.Generator, name: str) -> str:
    words = name.replace(",", "").split()
    if len(words) < 2:
        return _typo(rng, name)
    i = int(rng.integers(0, len(words) - 1))
    words[i], words[i + 1] = words[i + 1], words[i]
    swapped = " ".join(words)
    return swapped if swapped != name.replace(",", "") else _typo(rng, name)


def _change_suffix(rng: np.random.Generator, name: str) -> str:
    words = name.replace(",", "").split()
    while len(words) > 1 and words[-1].upper() in _LEGAL_ENDINGS:
        words.pop()
    suffix = NEAR_MISS_SUFFIXES[rng.integers(0, len(NEAR_MISS_SUFFIXES))]
    return " ".join([*words, suffix])


def near_misses(rng: np.random.Generator, listed: np.ndarray) -> np.ndarray:
    """Names that resemble the listed names without being them: a typo, two words swapped or another suffix.

    Half come out in title case, as order desks type them; screening compares names case-blind.
    """
    makers = (_typo, _swap_words, _change_suffix)
    kinds = rng.integers(0, len(makers), len(listed))
    titled = rng.random(len(listed)) < 0.5
    out = []
    for name, kind, title in zip(listed, kinds, titled, strict=True):
        made = makers[kind](rng, str(name))
        if made.upper() == str(name).upper():
            made = _typo(rng, str(name))
        out.append(made.title() if title else made)
    return np.asarray(out, dtype=object)
