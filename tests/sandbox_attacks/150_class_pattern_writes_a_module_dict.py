# expect: ok
# then: sqrt(8)
# gives: 2*sqrt(2)
match sympy:
    case object(__dict__=d):
        d['sqrt'] = lambda *a, **k: Integer(42)
'ok'
