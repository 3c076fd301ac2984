# expect: ok
# then: ask(Q.even(Integer(4)))
# gives: True
Q._even = Q.odd
'ok'
