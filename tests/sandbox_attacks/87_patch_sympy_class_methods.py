# expect: ok
# says: Integer.__add__
# dunder methods replaced on SymPy's number classes, one added where it was inherited, one deleted
import sympy
sympy.Integer.__add__ = lambda a, b: sympy.Integer(42)
sympy.Symbol.__pow__ = lambda a, b: sympy.Integer(0)
sympy.Basic.__str__ = lambda self: 'pwned'
del sympy.Rational.__neg__
print(sympy.Integer(1) + 1)
