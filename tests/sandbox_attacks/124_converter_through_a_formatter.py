# expect: ok
# says: put back
# then: S(1)/2
# gives: 1/2
import string
table = string.Formatter().get_field('0.sys.modules[sympy.core.sympify]._sympy_converter', [fractions], {})[0]
table[int] = lambda i: Float(i)
'ok'
