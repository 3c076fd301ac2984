# expect: ok
# then: Rational(4, 6)
# gives: 2/3
# igcd's own functools cache, which SymPy's clear_cache does not clear, filled with keys whose __eq__ lies
from sympy.core.intfunc import igcd
class Liar:
    def __init__(self, value):
        self.value = value
    def __hash__(self):
        return hash(self.value)
    def __eq__(self, other):
        return other == self.value
    def __index__(self):
        return 1
for a in range(1, 25):
    for b in range(1, 25):
        igcd(Liar(a), b)
'ok'
