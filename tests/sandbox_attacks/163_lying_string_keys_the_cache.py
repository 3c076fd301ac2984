# expect: ok
# then: atan(x)
# gives: atan(x)
class Name(str):
    __hash__ = lambda s: hash('x')
    __eq__ = lambda s, o: o in ('x', 'y')
    __ne__ = lambda s, o: o not in ('x', 'y')
y = Symbol(Name('y'))
atan(y)
'ok'
