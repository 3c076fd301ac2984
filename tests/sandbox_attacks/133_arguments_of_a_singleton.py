# expect: ok
# says: put back
# then: str(sorted((pi + Symbol('w')).free_symbols, key=str))
# gives: '[w]'
S.Pi._args = (Symbol('zz'),)
'ok'
