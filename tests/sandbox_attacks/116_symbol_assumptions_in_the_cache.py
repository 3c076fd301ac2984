# expect: ok
# then: str(ask(Q.positive(symbols("x"))))
# gives: 'None'
# every later symbols('x') is this object, from SymPy's cache
x = symbols('x')
x._assumptions['positive'] = True
x._assumptions['real'] = True
'ok'
