# expect: ok
# the symbol's name is released when the guard clears SymPy's cache
class Name(str):
    def __del__(self):
        import sympy
        sympy.solve = lambda *args, **kwargs: [42]
Symbol(Name('q'))
'ok'
