# expect: ok
# says: put back
# copy.copy sets the state a __reduce_ex__ returns on any object, here a printer class
import copy, operator
from sympy.printing.str import StrPrinter
class Reducer:
    def __reduce_ex__(self, protocol):
        return (operator.itemgetter(0), ([StrPrinter],), (None, {'_print_Integer': lambda self, e: '7'}))
copy.copy(Reducer())
'ok'
