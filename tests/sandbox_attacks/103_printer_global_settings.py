# expect: ok
# says: put back
# then: str(Symbol('x')**2/2 + Symbol('x')*Symbol('y'))
# gives: 'x**2/2 + x*y'
# a printing setting for every later call, set by a library method: no store, nothing named that holds it
from sympy.printing.printer import Printer
Printer.set_global_settings(order='rev-lex')
'ok'
