# expect: ok
# says: put back
x = symbols('x')
domain = Poly(x**2 - 1, x).domain
domain.to_sympy = lambda a: Integer(7)
'ok'
