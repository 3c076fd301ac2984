# expect: ok
# then: fractions.Fraction(Integer(3), 4)
# gives: Fraction(3, 4)
import _abc, numbers
for c in (numbers.Number, numbers.Complex, numbers.Real, numbers.Rational, numbers.Integral):
    _abc._reset_registry(c)
    _abc._reset_caches(c)
'ok'
