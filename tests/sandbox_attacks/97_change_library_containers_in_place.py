# expect: ok
# says: put back
# SymPy's registries and settings changed in place, no attribute replaced: how ints are read, how results print
from sympy import Integer
from sympy.core.sympify import converter
from sympy.printing.str import StrPrinter
from sympy.printing.latex import LatexPrinter
from sympy.core.basic import ordering_of_classes
converter[int] = lambda n: Integer(42)
StrPrinter._default_settings['sympy_integers'] = True
LatexPrinter._default_settings['mul_symbol'] = 'times'
ordering_of_classes.reverse()
print('changed')
