# expect: ok
# then: N(pi, 30)
# gives: 3.14159265358979323846264338328
import mpmath
f = mpmath.libmp.libelefun.pi_fixed
memo = [cell.cell_contents for cell in getattr(f, '__clos' + 'ure__') if callable(cell.cell_contents)][0]
memo.memo_prec = 100000
memo.memo_val = 3 << 100000
'ok'
