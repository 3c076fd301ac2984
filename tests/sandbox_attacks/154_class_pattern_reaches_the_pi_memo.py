# expect: ok
# then: N(pi, 25)
# gives: 3.141592653589793238462643
import mpmath
match mpmath.libmp.libelefun.pi_fixed:
    case object(__closure__=(cell,)):
        match cell:
            case object(cell_contents=f):
                match f:
                    case object(__dict__=d):
                        d['memo_prec'] = 5000
                        d['memo_val'] = 3 << 5000
'ok'
