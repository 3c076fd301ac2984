"""The unit an answer's value is written in, and conversion between units of one dimension.

The grader strips units from both sides before it compares values, so that "5 cm" is right for
"5". A unit is therefore only looked at when *both* sides name a known one: two units of one
dimension compare by value ("120 minutes" for "2 hours"), two of different dimensions never match
("15 m" for "15 s"), and a unit the table lacks ("5 square units") decides nothing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

# canonical name: (aliases, dimension, size in the dimension's base unit). Exact definitions only
# (the inch is 2.54 cm, the pound 0.45359237 kg); a year has a dimension of its own, since 365 and
# 365.25 days are both in use, and so do euros and miles per hour.
_UNITS: dict[str, tuple[tuple[str, ...], str, Fraction]] = {
    "mm": (("mm", "millimeter", "millimetre"), "length", Fraction(1, 1000)),
    "cm": (("cm", "centimeter", "centimetre"), "length", Fraction(1, 100)),
    "m": (("m", "meter", "metre"), "length", Fraction(1)),
    "km": (("km", "kilometer", "kilometre"), "length", Fraction(1000)),
    "in": (("in", "inch", "inche"), "length", Fraction(254, 10000)),
    "ft": (("ft", "foot", "feet"), "length", Fraction(3048, 10000)),
    "yd": (("yd", "yard"), "length", Fraction(9144, 10000)),
    "mi": (("mi", "mile"), "length", Fraction(1609344, 1000)),
    "s": (("s", "sec", "second"), "time", Fraction(1)),
    "min": (("min", "minute"), "time", Fraction(60)),
    "h": (("h", "hr", "hour"), "time", Fraction(3600)),
    "day": (("day",), "time", Fraction(86400)),
    "week": (("week",), "time", Fraction(604800)),
    "yr": (("yr", "year"), "year", Fraction(1)),
    "mg": (("mg", "milligram"), "mass", Fraction(1, 1000)),
    "g": (("g", "gram"), "mass", Fraction(1)),
    "kg": (("kg", "kilogram"), "mass", Fraction(1000)),
    "lb": (("lb", "pound"), "mass", Fraction(45359237, 100000)),
    "oz": (("oz", "ounce"), "mass", Fraction(45359237, 1600000)),
    "ml": (("ml", "milliliter", "millilitre"), "volume", Fraction(1)),
    "l": (("l", "liter", "litre"), "volume", Fraction(1000)),
    "gal": (("gal", "gallon"), "volume", Fraction(3785411784, 1000000)),
    "cent": (("cent",), "money", Fraction(1)),
    "dollar": (("dollar", "usd"), "money", Fraction(100)),
    "euro": (("euro", "eur"), "euro", Fraction(1)),
    "deg": (("deg", "degree"), "angle", Fraction(1)),
    "rad": (("rad", "radian"), "radian", Fraction(1)),  # pi/180 of a degree: compared symbolically, not here
}
# SI symbols that take a prefix, with their dimension and size in it. The symbols are case-sensitive
# ("ms" is a millisecond, "MW" a megawatt, "mW" a milliwatt), so they are looked up before the table's
# spelled-out words; an electronvolt is exactly 1.602176634e-19 J since 2019.
_SI_SYMBOLS = {"m": ("length", Fraction(1)), "g": ("mass", Fraction(1)), "s": ("time", Fraction(1)),
               "A": ("current", Fraction(1)), "J": ("energy", Fraction(1)), "eV": ("energy", Fraction(1602176634, 10**28)),
               "Hz": ("frequency", Fraction(1)), "W": ("power", Fraction(1)), "V": ("voltage", Fraction(1)),
               "N": ("force", Fraction(1)), "Pa": ("pressure", Fraction(1)), "K": ("temperature", Fraction(1)),
               "mol": ("amount", Fraction(1))}
_SI_PREFIXES = {"": Fraction(1), "n": Fraction(1, 10**9), "m": Fraction(1, 1000), "k": Fraction(1000),
                "M": Fraction(10**6), "G": Fraction(10**9)}
SI_UNITS = {prefix + symbol: (dimension, factor * size)
            for symbol, (dimension, size) in _SI_SYMBOLS.items() for prefix, factor in _SI_PREFIXES.items()}
SI_UNITS["cm"] = ("length", Fraction(1, 100))

# Rates written as one word: the unit they abbreviate, "per" another.
_RATE_WORDS = {"mph": ("mi", "h"), "kph": ("km", "h"), "kmh": ("km", "h"), "fps": ("ft", "s")}
_CANONICAL = {alias: name for name, (aliases, _, _) in _UNITS.items() for alias in aliases}

# The unit part after a value: a word of 4+ letters ("dollars", "inches") or a short one, an exponent,
# a "per" part. `\text{}` around it is allowed; its exponent may sit outside (`5\text{ cm}^2`).
_UNIT = r"(?:[A-Za-z]{4,}|[A-Za-z]{1,3})\.?(?:\s*\^\s*\{?-?\d\}?)?"
TRAILING_UNITS = re.compile(
    r"^(?P<value>.*?[\d})])(?P<gap>\s*)(?P<units>" + _UNIT + r"(?:\s*(?:/|\bper\b)\s*" + _UNIT + r")?(?:\s+" + _UNIT + r")*)$"
)
TEXT_UNITS = re.compile(
    r"^(?P<value>.*?(?:[\d})]|\\pi))\s*\\(?:text|mbox|mathrm|textrm|operatorname)\s*\{\s*(?P<units>[A-Za-z][A-Za-z .\-/]*?(?:\^\s*\{?-?\d\}?)?)\s*\}"
    r"(?P<after>(?:\s*\^\s*\{?-?\d\}?)?(?:\s*/\s*(?:\\(?:text|mathrm)\s*)?\{?[A-Za-z]+\}?(?:\s*\^\s*\{?-?\d\}?)?)?)$"
)
_POWERED_WORD = r"\s*(?P<{0}>[A-Za-z]+)\.?\s*(?:\^\s*\{{?(?P<{0}_power>\d)\}}?)?\s*"
_SIMPLE_UNIT = re.compile("^" + _POWERED_WORD.format("word") + "$")  # one word and a power
_RATE = re.compile("^" + _POWERED_WORD.format("word") + r"(?:/|\bper\b)" + _POWERED_WORD.format("per") + "$")  # "m/s^2"
_PRICE_RATE = re.compile(r"(?:/|\bper\b)\s*(?P<per>[A-Za-z]+)\s*$")  # "\\$5 per hour", "\\$3/lb"
LATEX_SPACING = re.compile(r"(?<!\\)\\[,;: !]|~|\\qquad|\\quad")  # not the row break `\\\\ `


@dataclass(frozen=True)
class Unit:
    """A known unit after a value. `power` is its exponent (2 for cm^2); `simple` says the unit is one
    word and a power, or a rate of two such ("km/h", "m/s^2"), so that a conversion factor applies.
    A rate names its second unit in `per`, with that unit's exponent in `per_power`."""

    name: str
    power: int
    simple: bool
    per: str | None = None
    per_power: int = 1


def without_latex_spacing(s: str) -> str:
    """LaTeX's spacing commands (`\\,`, `~`, `\\quad` ...) as plain spaces: `10\\,\\mathrm{~m}` is "10 m"."""
    return LATEX_SPACING.sub(" ", s)


def units_match(answer: str) -> re.Match[str] | None:
    """The value and the words after it (`TEXT_UNITS`, else `TRAILING_UNITS`), read through `$` and LaTeX spacing."""
    s = without_latex_spacing(answer.replace("$", "")).strip().rstrip(".")
    return TEXT_UNITS.match(s) or TRAILING_UNITS.match(s)


def unit_of(answer: str) -> Unit | None:
    """The (first) known unit after a value, or None; a price written "\\$5" is in dollars."""
    if re.match(r"\s*\\?\$\s*\\?\$?\s*-?\d", answer) and answer.count("$") - answer.count("\\$") <= 1:
        s = without_latex_spacing(answer.replace("$", "")).strip().rstrip(".")
        rate = _PRICE_RATE.search(_unwrap_units(s))  # "\\$12 per hour"
        per = _canonical(rate.group("per")) if rate else None
        return Unit("dollar", 1, True, per) if per or not rate else Unit("dollar", 1, False)
    m = units_match(answer)
    if m is None:
        return None
    units = _unwrap_units(m.group("units") + (m.groupdict().get("after") or ""))
    if rate := _RATE.match(units):
        name, per = _canonical(rate.group("word")), _canonical(rate.group("per"))
        if name is not None and per is not None:
            return Unit(name, int(rate.group("word_power") or 1), True, per, int(rate.group("per_power") or 1))
    word = re.split(r"[^A-Za-z]+", units.strip())[0]
    if word.lower() in _RATE_WORDS and _SIMPLE_UNIT.match(units):
        return Unit(_RATE_WORDS[word.lower()][0], 1, True, _RATE_WORDS[word.lower()][1])
    name = _canonical(word)
    if name is None:
        return None
    simple = _SIMPLE_UNIT.match(units)
    return Unit(name, int(simple.group("word_power") or 1) if simple else 1, simple is not None)


def _unwrap_units(units: str) -> str:
    """`\\text{km}/\\text{h}` -> "km/h": the unit's words without their LaTeX wrappers."""
    return re.sub(r"\\(?:text|mbox|mathrm|textrm|operatorname)\s*\{\s*([^{}]*?)\s*\}", r"\1", units)


def _canonical(word: str) -> str | None:
    if word in ("mL", "L"):  # capital L is litres; lower-case single letters follow the table
        return "ml" if word == "mL" else "l"
    if word in SI_UNITS:
        return word
    word = word.lower()
    for candidate in (word, word[:-1], word[:-2]) if len(word) > 3 else (word,):  # "inches", "meters"
        if candidate in _CANONICAL:
            return _CANONICAL[candidate]
    return None


def conversion_factor(source: Unit, target: Unit) -> Fraction | None:
    """What a value in `source` is multiplied by to be in `target`, when both are simple units, or both
    rates, of one dimension with the same powers (1 m^2 is 10,000 cm^2; 1 m/s is 3.6 km/h); None when
    no factor applies."""
    if source.name == target.name and (not (source.simple and target.simple) or (source.per is None) != (target.per is None)):
        return Fraction(1)  # "\\$15 per hour" for "\\$15": a reference may leave out the "per" part
    if not (source.simple and target.simple) or (source.per is None) != (target.per is None):
        return None
    factor = _factor(source.name, source.power, target.name, target.power)
    if source.per is None or target.per is None or factor is None:
        return factor
    per_factor = _factor(source.per, source.per_power, target.per, target.per_power)
    return None if per_factor is None else factor / per_factor


def _factor(source: str, source_power: int, target: str, target_power: int) -> Fraction | None:
    source_dimension, source_power, source_size = _in_base_units(source, source_power)
    target_dimension, target_power, target_size = _in_base_units(target, target_power)
    if source_dimension != target_dimension or source_power != target_power:
        return None
    return source_size / target_size


def _in_base_units(name: str, power: int) -> tuple[str, int, Fraction]:
    """(dimension, power, size of one unit in the base unit to that power); a volume is a length cubed
    (1 mL = 1 cm^3), so "5000 L" is "5 m^3"."""
    dimension, size = _dimension_and_size(name)
    if dimension == "volume" and power == 1:
        return "length", 3, size * Fraction(1, 10**6)
    return dimension, power, size**power


def _dimension_and_size(name: str) -> tuple[str, Fraction]:
    if name in SI_UNITS:
        return SI_UNITS[name]
    _, dimension, size = _UNITS[name]
    return dimension, size
