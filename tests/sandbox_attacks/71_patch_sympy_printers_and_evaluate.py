# expect: ok
# says: put back
# SymPy's classes, modules and global parameters are the interpreter's: the session's next call must not see the patches
import sympy
from sympy.core.parameters import global_parameters
from sympy.printing.str import StrPrinter
StrPrinter._print_Integer = lambda self, expr: 'patched'
global_parameters.evaluate = False
sympy.solve = lambda *args, **kwargs: 'patched'
print('patched')
