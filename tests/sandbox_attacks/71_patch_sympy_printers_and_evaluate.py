# expect: ok
# says: patched
# persists: this session
# the session's own state is the model's to change (a notebook); only a fresh session must not see it
import sympy
from sympy.core.parameters import global_parameters
from sympy.printing.str import StrPrinter
StrPrinter._print_Integer = lambda self, expr: 'patched'
global_parameters.evaluate = False
sympy.solve = lambda *args, **kwargs: 'patched'
print('patched')
