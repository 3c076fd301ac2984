# expect: ok
# says: put back
class Sevens(type(ZZ)):
    def to_sympy(self, a):
        return Integer(7)
ZZ.__class__ = Sevens
'ok'
