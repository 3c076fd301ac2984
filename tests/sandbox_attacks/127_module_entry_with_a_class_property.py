# expect: ok
# the guard's own isinstance() on sys.modules entries would run this property
class Impostor:
    @property
    def __class__(self):
        import sympy
        sympy.solve = lambda *args, **kwargs: [42]
        return Impostor
fractions.sys.modules['zz_impostor'] = Impostor()
'ok'
