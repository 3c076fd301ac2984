# expect: ok
# then: solveset(sin(x) - S(1)/2, x, Interval(0, 2*pi))
# gives: {pi/6, 5*pi/6}
import fractions
vars(fractions.sys.modules['sympy.solvers.solveset'])['_trig_inverses'] = {sin: ((lambda y: Integer(1),), 2*pi, Interval(-1, 1))}
'ok'
