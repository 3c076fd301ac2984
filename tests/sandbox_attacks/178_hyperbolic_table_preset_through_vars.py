# expect: ok
# then: solveset(sinh(x) - 1, x, S.Complexes)
# gives: Union(ImageSet(Lambda(_n, 2*_n*I*pi + log(1 + sqrt(2))), Integers), ImageSet(Lambda(_n, 2*_n*I*pi - log(1 + sqrt(2)) + I*pi), Integers))
import fractions
vars(fractions.sys.modules['sympy.solvers.solveset'])['_hyp_inverses'] = {sinh: ((lambda y: Integer(7),), 2*I*pi, ())}
'ok'
