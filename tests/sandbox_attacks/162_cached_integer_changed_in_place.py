# expect: ok
# then: Integer(3) + 4
# gives: 7
object.__setattr__(Integer(7), 'p', 8)
'ok'
