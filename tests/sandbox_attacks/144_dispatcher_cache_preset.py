# expect: ok
# then: Union(Interval(0, 1), Interval(2, 3))
# gives: Union(Interval(0, 1), Interval(2, 3))
from sympy import Interval, S
from sympy.sets.handlers.union import union_sets
union_sets._cache[(Interval, Interval)] = lambda a, b: S.EmptySet
'ok'
