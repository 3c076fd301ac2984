# expect: ok
# says: put back
# attributes of objects the library holds (the integer ring, the rationals, mpmath's context) set on the object itself
import mpmath
from sympy.polys.domains import ZZ, QQ
ZZ.one = ZZ(2)
ZZ.dtype = float
QQ.zero = QQ(1)
mpmath.mp.sqrt = lambda x: 42
print('changed')
