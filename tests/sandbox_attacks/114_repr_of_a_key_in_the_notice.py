# expect: ok
# says: put back
# the notice names what was put back: it must not call this key's __repr__
from sympy.core.sympify import converter
class Key:
    def __repr__(self):
        import sympy
        sympy.solve = lambda *args, **kwargs: [42]
        return 'key'
converter[Key()] = 1
'ok'
