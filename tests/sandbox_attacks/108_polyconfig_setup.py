# expect: ok
# says: put back
# then: factor(Symbol('t')**4 - 1)
# gives: (t - 1)*(t + 1)*(t**2 + 1)
from sympy.polys import polyconfig
polyconfig.setup('GF_FACTOR_METHOD', 'bogus')
'ok'
