# expect: ok
# then: Matrix([[1, 2], [3, 4]]).det()
# gives: -2
match type:
    case object(__setattr__=tsa):
        tsa(type(Matrix([[1]])), 'det', lambda self, *a, **k: Integer(0))
'ok'
