# expect: ok
# says: put back
# a module's dict written without setattr (vars, __dict__, a function's __globals__): no module watch sees it
import sympy, sympy.solvers.solvers as solvers
vars(sympy)['solve'] = lambda *args, **kwargs: 'pwned'
solvers.__dict__['solve'] = lambda *args, **kwargs: 'pwned'
sympy.factor.__globals__['_generic_factor'] = lambda *args, **kwargs: 'pwned'
solvers.solve.__globals__['_solve'] = lambda *args, **kwargs: ['pwned']
print('written')
