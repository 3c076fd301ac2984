# expect: ok
# says: put back
# then: Interval(0, 1).union(Interval(2, 3))
# gives: Union(Interval(0, 1), Interval(2, 3))
from sympy.sets.handlers.union import union_sets
union_sets.register(Interval, Interval)(lambda a, b: S.EmptySet)
'ok'
