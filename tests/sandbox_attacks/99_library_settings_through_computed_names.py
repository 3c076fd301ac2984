# expect: ok
# says: put back
# SymPy's settings and registries reached through names built at run time, with no attribute store at all
import operator, sys
from sympy import Integer
from sympy.printing.str import StrPrinter
operator.attrgetter('_default_' + 'settings')(StrPrinter)['sympy_integers'] = True
vars(sys.modules['sympy.core.sympify'])['conv' + 'erter'][int] = lambda n: Integer(42)
print('changed')
