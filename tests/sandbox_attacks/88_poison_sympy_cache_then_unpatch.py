# expect: ok
# says: 42
# patch, let SymPy cache results computed through the patch, then put the original back itself
import sympy
original = sympy.Integer.__add__
sympy.Integer.__add__ = lambda a, b: sympy.Integer(42)
x = sympy.Symbol('x')
print(sympy.expand((x - 3) * (x + 3)), sympy.solve(x**2 - 9, x), sympy.Integer(1) + 1)
sympy.Integer.__add__ = original
