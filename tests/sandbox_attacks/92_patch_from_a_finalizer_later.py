# expect: ok
# says: armed
# garbage in a reference cycle whose __del__ patches SymPy whenever the collector gets to it: in the next call
import sympy
class Saboteur:
    def __del__(self):
        sympy.Integer.__add__ = lambda a, b: sympy.Integer(42)
        sympy.solve = lambda *args, **kwargs: 'pwned'
saboteur = Saboteur()
saboteur.cycle = saboteur
del saboteur
print('armed')
