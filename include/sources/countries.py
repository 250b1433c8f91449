"""Country names as sources write them, mapped to ISO 3166-1 alpha-2 codes.

DataCo writes countries in Spanish ("Estados Unidos", "EE. UU.", "México"), the OFAC SDN list in
English with its own word order ("Korea, North"). Canonical tables hold the two-letter code where this
table knows the name and the source's text otherwise, so an unknown name is never lost; callers count
how many stayed text. Names are compared without accents, case, spaces or punctuation.

The table covers the names found in the shipped DataCo sample and in the SDN list's nationalities,
plus the common names of the same countries. ``XK`` (Kosovo) is a user-assigned code in wide use, not
an official ISO one. Names that are not countries ("Palestinian", "Region: Gaza") stay text on purpose.
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

_NAMES: dict[str, tuple[str, ...]] = {
    "AF": ("Afghanistan", "Afganistán"),
    "AL": ("Albania",),
    "AM": ("Armenia",),
    "AO": ("Angola",),
    "AR": ("Argentina",),
    "AT": ("Austria",),
    "AU": ("Australia",),
    "AZ": ("Azerbaijan", "Azerbaiyán"),
    "BA": ("Bosnia and Herzegovina", "Bosnia y Herzegovina"),
    "BB": ("Barbados",),
    "BD": ("Bangladesh", "Bangladés"),
    "BE": ("Belgium", "Bélgica"),
    "BF": ("Burkina Faso",),
    "BG": ("Bulgaria",),
    "BH": ("Bahrain", "Baréin", "Bahréin"),
    "BJ": ("Benin", "Benín"),
    "BO": ("Bolivia",),
    "BR": ("Brazil", "Brasil"),
    "BY": ("Belarus", "Bielorrusia"),
    "BZ": ("Belize", "Belice"),
    "CA": ("Canada", "Canadá"),
    "CD": (
        "Congo, Democratic Republic of the",
        "Democratic Republic of the Congo",
        "República Democrática del Congo",
    ),
    "CF": ("Central African Republic", "República Centroafricana"),
    "CH": ("Switzerland", "Suiza"),
    "CI": ("Cote d'Ivoire", "Ivory Coast", "Costa de Marfil"),
    "CL": ("Chile",),
    "CM": ("Cameroon", "Camerún"),
    "CN": ("China",),
    "CO": ("Colombia",),
    "CR": ("Costa Rica",),
    "CU": ("Cuba",),
    "CV": ("Cabo Verde", "Cape Verde"),
    "CY": ("Cyprus", "Chipre"),
    "CZ": ("Czech Republic", "Czechia", "República Checa"),
    "DE": ("Germany", "Alemania"),
    "DJ": ("Djibouti", "Yibuti"),
    "DK": ("Denmark", "Dinamarca"),
    "DO": ("Dominican Republic", "República Dominicana"),
    "DZ": ("Algeria", "Argelia"),
    "EC": ("Ecuador",),
    "EE": ("Estonia",),
    "EG": ("Egypt", "Egipto"),
    "ER": ("Eritrea",),
    "ES": ("Spain", "España"),
    "ET": ("Ethiopia", "Etiopía"),
    "FI": ("Finland", "Finlandia"),
    "FR": ("France", "Francia"),
    "GA": ("Gabon", "Gabón"),
    "GB": ("United Kingdom", "Reino Unido"),
    "GE": ("Georgia",),
    "GH": ("Ghana",),
    "GM": ("The Gambia", "Gambia"),
    "GN": ("Guinea",),
    "GP": ("Guadeloupe", "Guadalupe"),
    "GQ": ("Equatorial Guinea", "Guinea Ecuatorial"),
    "GR": ("Greece", "Grecia"),
    "GT": ("Guatemala",),
    "GW": ("Guinea-Bissau", "Guinea-Bisáu"),
    "HK": ("Hong Kong",),
    "HN": ("Honduras",),
    "HR": ("Croatia", "Croacia"),
    "HT": ("Haiti", "Haití"),
    "HU": ("Hungary", "Hungría"),
    "ID": ("Indonesia",),
    "IE": ("Ireland", "Irlanda"),
    "IL": ("Israel",),
    "IN": ("India",),
    "IQ": ("Iraq", "Irak"),
    "IR": ("Iran", "Irán"),
    "IT": ("Italy", "Italia"),
    "JM": ("Jamaica",),
    "JO": ("Jordan", "Jordania"),
    "JP": ("Japan", "Japón"),
    "KE": ("Kenya", "Kenia"),
    "KG": ("Kyrgyzstan", "Kirguistán"),
    "KH": ("Cambodia", "Camboya"),
    "KN": ("Saint Kitts and Nevis", "San Cristóbal y Nieves"),
    "KP": ("Korea, North", "North Korea", "Corea del Norte"),
    "KR": ("Korea, South", "South Korea", "Corea del Sur"),
    "KW": ("Kuwait",),
    "KZ": ("Kazakhstan", "Kazajistán"),
    "LA": ("Laos",),
    "LB": ("Lebanon", "Líbano"),
    "LI": ("Liechtenstein",),
    "LK": ("Sri Lanka",),
    "LR": ("Liberia",),
    "LT": ("Lithuania", "Lituania"),
    "LV": ("Latvia", "Letonia"),
    "LY": ("Libya", "Libia"),
    "MA": ("Morocco", "Marruecos"),
    "MD": ("Moldova", "Moldavia"),
    "ME": ("Montenegro",),
    "MG": ("Madagascar",),
    "MK": ("North Macedonia, The Republic of", "North Macedonia", "Macedonia"),
    "ML": ("Mali", "Malí"),
    "MM": ("Burma", "Myanmar", "Myanmar (Birmania)"),
    "MN": ("Mongolia",),
    "MQ": ("Martinique", "Martinica"),
    "MR": ("Mauritania",),
    "MT": ("Malta",),
    "MV": ("Maldives", "Maldivas"),
    "MX": ("Mexico", "México"),
    "MY": ("Malaysia", "Malasia"),
    "MZ": ("Mozambique",),
    "NE": ("Niger", "Níger"),
    "NG": ("Nigeria",),
    "NI": ("Nicaragua",),
    "NL": ("Netherlands", "Países Bajos"),
    "NO": ("Norway", "Noruega"),
    "NP": ("Nepal",),
    "NZ": ("New Zealand", "Nueva Zelanda"),
    "OM": ("Oman", "Omán"),
    "PA": ("Panama", "Panamá"),
    "PE": ("Peru", "Perú"),
    "PG": ("Papua New Guinea", "Papúa Nueva Guinea"),
    "PH": ("Philippines", "Filipinas"),
    "PK": ("Pakistan", "Pakistán"),
    "PL": ("Poland", "Polonia"),
    "PR": ("Puerto Rico",),
    "PT": ("Portugal",),
    "PY": ("Paraguay",),
    "QA": ("Qatar", "Catar"),
    "RO": ("Romania", "Rumania", "Rumanía"),
    "RS": ("Serbia",),
    "RU": ("Russia", "Rusia"),
    "RW": ("Rwanda", "Ruanda"),
    "SA": ("Saudi Arabia", "Arabia Saudí", "Arabia Saudita"),
    "SD": ("Sudan", "Sudán"),
    "SE": ("Sweden", "Suecia"),
    "SG": ("Singapore", "Singapur"),
    "SI": ("Slovenia", "Eslovenia"),
    "SK": ("Slovakia", "Eslovaquia"),
    "SL": ("Sierra Leone", "Sierra Leona"),
    "SN": ("Senegal",),
    "SO": ("Somalia",),
    "SS": ("South Sudan", "Sudán del Sur"),
    "SV": ("El Salvador",),
    "SY": ("Syria", "Siria"),
    "TD": ("Chad",),
    "TG": ("Togo",),
    "TH": ("Thailand", "Tailandia"),
    "TM": ("Turkmenistan", "Turkmenistán"),
    "TN": ("Tunisia", "Túnez"),
    "TR": ("Turkey", "Turkiye", "Turquía"),
    "TT": ("Trinidad and Tobago", "Trinidad y Tobago"),
    "TW": ("Taiwan", "Taiwán"),
    "TZ": ("Tanzania",),
    "UA": ("Ukraine", "Ucrania"),
    "UG": ("Uganda",),
    "US": ("United States", "USA", "Estados Unidos", "EE. UU."),
    "UY": ("Uruguay",),
    "UZ": ("Uzbekistan", "Uzbekistán"),
    "VE": ("Venezuela",),
    "VN": ("Vietnam",),
    "XK": ("Kosovo",),
    "YE": ("Yemen",),
    "ZA": ("South Africa", "Sudáfrica", "SudAfrica"),
    "ZM": ("Zambia",),
    "ZW": ("Zimbabwe", "Zimbabue"),
}


def _key(name: str) -> str:
    """Fold a name to what comparison keeps: letters and digits, no accents, no case."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(ch for ch in decomposed if ch.isalnum() and not unicodedata.combining(ch)).casefold()


_BY_KEY: dict[str, str] = {_key(name): code for code, names in _NAMES.items() for name in names}


def to_iso2(names: pd.Series) -> pd.Series:
    """Map country names to ISO alpha-2 codes, keeping the (stripped) text of names the table lacks.

    Args:
        names: country names as a source writes them; missing values stay missing.

    Returns:
        A string series of the same index: the code where known, else the source's text.
    """
    distinct = names.dropna().unique()
    lookup = {name: _BY_KEY.get(_key(name), name.strip()) for name in distinct}
    return names.map(lookup).astype("string")


def is_iso2(values: pd.Series) -> pd.Series:
    """True where a value is one of the codes this table maps to (missing values are False)."""
    return values.isin(_NAMES.keys()).fillna(False).astype(bool)
