# expect: ok
# then: import copy; str(copy.deepcopy(Symbol('x'))), str(copy.copy(Symbol('x'))), str(copy.copy(Rational(1, 3)))
# gives: ('x', 'x', '1/3')
import copy, copyreg
import sympy
copy._deepcopy_dispatch[sympy.Symbol] = lambda x, memo: sympy.Symbol('z')
copy._copy_dispatch[sympy.Symbol] = lambda x: sympy.Symbol('z')
copyreg.dispatch_table[sympy.Rational] = lambda r: (sympy.Integer, (7,))
'ok'
