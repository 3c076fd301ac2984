# expect: ok
# then: Union(Interval(0, 1), FiniteSet(5))
# gives: Union({5}, Interval(0, 1))
from sympy.sets.handlers.union import union_sets
union_sets.register(Interval, FiniteSet)(lambda a, b: S.EmptySet)
'ok'
