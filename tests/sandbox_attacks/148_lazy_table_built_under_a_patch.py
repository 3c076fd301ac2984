# expect: ok
# then: solveset(sin(x) - S(1)/2, x, Interval(0, 2*pi))
# gives: {pi/6, 5*pi/6}
import fractions
solveset_module = fractions.sys.modules['sympy.solvers.solveset']
solveset_module.asin = lambda y: Integer(7)
x = symbols('x')
solveset(sin(x) - S(1)/2, x, S.Reals)
'ok'
