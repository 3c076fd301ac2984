# expect: ok
# says: put back
from sympy.core.sympify import converter
class Key:
    calls = 0
    def __hash__(self):
        Key.calls += 1
        if Key.calls > 1:
            import sympy
            sympy.solve = lambda *args, **kwargs: [42]
        return 1
converter[Key()] = 1
'ok'
