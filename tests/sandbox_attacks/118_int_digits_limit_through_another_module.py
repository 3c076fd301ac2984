# expect: ok
# says: put back
# then: len(str(factorial(500)))
# gives: 1135
fractions.sys.set_int_max_str_digits(640)
'ok'
