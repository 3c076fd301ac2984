# expect: ok
# says: put back
# functions replaced in SymPy's modules (top level and where they are defined) and a singleton replaced
import sympy, sympy.solvers.solvers as solvers
sympy.solve = lambda *args, **kwargs: 'pwned'
solvers.solve = lambda *args, **kwargs: 'pwned'
sympy.symbols = lambda *args, **kwargs: 'pwned'
sympy.S.One = sympy.Integer(2)
sympy.core.numbers.igcd = lambda *args: 7
print('replaced')
