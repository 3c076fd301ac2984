# expect: ok
# then: str(ask(Q.positive(Symbol('z'))))
# gives: 'None'
Q.positive.handler.register(Symbol)(lambda expr, assumptions: True)
'ok'
