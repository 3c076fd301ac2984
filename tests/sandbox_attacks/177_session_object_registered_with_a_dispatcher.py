# expect: ok
# then: Union(Interval(0, 1), FiniteSet(5))
# gives: Union({5}, Interval(0, 1))
from sympy.sets.handlers.union import union_sets
class Handler:
    def __call__(self, a, b):
        return S.EmptySet
union_sets.register(Interval, FiniteSet)(Handler())
'ok'
