# expect: ok
# says: put back
# library functions changed in place: their code object (also of a classmethod's function) and their defaults
import sympy, sympy.solvers.solvers as solvers
solvers.solve.__code__ = (lambda *args, **flags: [42]).__code__
sympy.Add.flatten.__func__.__code__ = (lambda cls, seq: ([sympy.Integer(42)], [], None)).__code__
sympy.polys.polytools.degree.__defaults__ = (sympy.Symbol('y'),)
print('swapped')
