# expect: ok
# then: CRootOf(x**3 - x - 1, 0).evalf(10)
# gives: 1.324717957
from sympy.polys.rootoftools import _reals_cache
x = Symbol('x')
r = CRootOf(x**3 - x - 1, 0); r.evalf(5)
r2 = CRootOf(x**3 - x - 5, 0); r2.evalf(5)
_reals_cache[r.poly][0] = _reals_cache[r2.poly][0]
'ok'
