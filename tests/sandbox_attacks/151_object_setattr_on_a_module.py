# expect: ok
# then: factor(x**2 - 1)
# gives: (x - 1)*(x + 1)
object.__setattr__(sympy, 'factor', lambda *a, **k: Integer(42))
'ok'
