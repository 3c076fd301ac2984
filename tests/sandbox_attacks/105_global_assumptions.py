# expect: ok
# says: put back
# then: refine(sqrt(Symbol('z')**2))
# gives: sqrt(z**2)
from sympy.assumptions import global_assumptions
global_assumptions.add(Q.negative(Symbol('z')))
'ok'
