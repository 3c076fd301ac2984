# expect: ok
# then: Rational(1, 2), S.Half + 1
# gives: (1/2, 3/2)
from sympy.core.singleton import Singleton
from sympy.core.numbers import RationalConstant
class Half(RationalConstant, metaclass=Singleton):
    p = 7
    q = 2
'ok'
