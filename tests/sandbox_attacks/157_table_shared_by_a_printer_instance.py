# expect: ok
# then: latex(Symbol('y') + 1)
# gives: 'y + 1'
from sympy.printing.latex import LatexPrinter
LatexPrinter()._settings['symbol_names'][Symbol('y')] = 'Q'
'ok'
