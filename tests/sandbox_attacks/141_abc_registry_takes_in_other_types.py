# expect: ok
# then: import numbers; isinstance(2.0, numbers.Integral), isinstance(Symbol('x'), numbers.Rational), isinstance(x, numbers.Number)
# gives: (False, False, False)
import numbers
import sympy
numbers.Integral.register(float)
numbers.Rational.register(sympy.Symbol)
'ok'
