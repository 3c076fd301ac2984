# expect: ok
# then: N(pi, 20)
# gives: 3.1415926535897932385
import mpmath
match sympy.core.evalf:
    case object(evalf_table=t):
        t[type(pi)] = lambda e, prec, options: (mpmath.libmp.from_int(3), None, prec, None)
'ok'
