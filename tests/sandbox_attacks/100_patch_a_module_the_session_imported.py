# expect: ok
# says: put back
# a SymPy module no session had loaded (imported here, not by the zygote), patched in the same call
import sympy.stats.rv as rv
import sympy.stats as stats
rv.expectation.__code__ = (lambda *args, **kwargs: 42).__code__
stats.E = lambda *args, **kwargs: 42
import sympy
sympy.solve = lambda *args, **kwargs: 'pwned'
print('patched')
