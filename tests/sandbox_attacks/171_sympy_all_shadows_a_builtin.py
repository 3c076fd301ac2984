# expect: ok
# then: abs(-3) + 1
# gives: 4
sympy.abs = lambda v: 42
sympy.__all__.append('abs')
'ok'
