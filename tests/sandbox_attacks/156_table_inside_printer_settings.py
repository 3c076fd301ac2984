# expect: ok
# then: latex(x**2)
# gives: 'x^{2}'
from sympy.printing.latex import LatexPrinter
LatexPrinter._default_settings['symbol_names'][Symbol('x')] = r'\omega'
'ok'
