# expect: ok
# then: str(Symbol('nq', integer=True, even=False).is_positive)
# gives: 'None'
from sympy.core.assumptions import _assume_rules
_assume_rules.full_implications[('integer', True)].add(('positive', True))
'ok'
