# expect: ok
# says: put back
# sys.modules written through a module that holds sys, with no import of it
class Fake:
    solve = staticmethod(lambda *args, **kwargs: [42])
    symbols = staticmethod(lambda *args, **kwargs: 7)
fractions.sys.modules['sympy'] = Fake
'ok'
