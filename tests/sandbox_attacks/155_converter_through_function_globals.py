# expect: ok
# then: Rational(1, 2) + 0.25
# gives: 0.750000000000000
match sympify:
    case object(__globals__=g):
        g['_sympy_converter'][float] = lambda f: Integer(7)
'ok'
