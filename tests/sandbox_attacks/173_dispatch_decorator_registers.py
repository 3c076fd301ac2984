# expect: ok
# then: Eq(Symbol('a'), Symbol('b'))
# gives: Eq(a, b)
from sympy.multipledispatch import dispatch
@dispatch(Symbol, Symbol)
def _eval_is_eq(a, b):
    return True
'ok'
