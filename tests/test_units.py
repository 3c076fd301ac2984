"""eval/units.py: which unit an answer is in, and the factor between two units."""
from fractions import Fraction

import pytest

from eval.units import Unit, conversion_factor, unit_of


@pytest.mark.parametrize(("answer", "unit"), [
    ("5 cm", Unit("cm", 1, True)),
    ("5\\text{ cm}^2", Unit("cm", 2, True)),
    ("5 cm^{3}", Unit("cm", 3, True)),
    ("120 minutes", Unit("min", 1, True)),
    ("2 Hours.", Unit("h", 1, True)),
    ("0.5 L", Unit("l", 1, True)),
    ("500 mL", Unit("ml", 1, True)),
    ("\\$2.50", Unit("dollar", 1, True)),
    ("18 km/h", Unit("km", 1, True, "h")),
    ("9.8 \\text{ m/s}^2", Unit("m", 1, True, "s", 2)),
    ("60 miles per hour", Unit("mi", 1, True, "h")),
    ("60 mph", Unit("mi", 1, True, "h")),
    ("\\$12 per hour", Unit("dollar", 1, True, "h")),
    ("\\$12 per widget", Unit("dollar", 1, False)),
    ("5 km per h per s", Unit("km", 1, False)),
    ("5 \\mathrm{~s}", Unit("s", 1, True)),  # OlympiadBench writes its units so
    ("10\\,\\text{cm}^2", Unit("cm", 2, True)),
    ("5 square units", None),
    ("x + 2", None),
])
def test_unit_of_names_the_unit_its_power_and_whether_it_is_one_word(answer, unit):
    assert unit_of(answer) == unit


@pytest.mark.parametrize(("source", "target", "factor"), [
    ("2 hours", "120 minutes", Fraction(60)),
    ("1 m^2", "1 cm^2", Fraction(10000)),
    ("1 inch", "1 cm", Fraction(254, 100)),
    ("1 lb", "1 oz", Fraction(16)),
    ("\\$1", "100 cents", Fraction(100)),
    ("5 cm/s", "5 cm", Fraction(1)),  # a reference may leave out the "per" part
    ("18 km/h", "5 m/s", Fraction(5, 18)),
    ("60 mph", "1 km/h", Fraction(1609344, 1000000)),
    ("9.8 m/s^2", "1 cm/s^2", Fraction(100)),
    ("\\$12 per hour", "1 cent per minute", Fraction(100, 60)),
])
def test_units_of_one_dimension_convert_exactly(source, target, factor):
    assert conversion_factor(unit_of(source), unit_of(target)) == factor


@pytest.mark.parametrize(("source", "target"), [
    ("2 km", "2 kg"),  # another dimension
    ("1 m^2", "1 cm"),  # another power
    ("5 m/s", "5 m/s^2"),  # another power of the "per" unit
    ("5 km/h", "5 kg/h"),  # another dimension on top
    ("5 km per h per s", "5 m/s"),  # a compound of three units is not converted
    ("1 year", "365 days"),  # a year is 365 or 365.25 days: no factor
    ("60 degrees", "1 rad"),  # pi/180 is compared symbolically by the grader, not here
])
def test_no_factor_across_dimensions_powers_or_compound_units(source, target):
    assert conversion_factor(unit_of(source), unit_of(target)) is None
