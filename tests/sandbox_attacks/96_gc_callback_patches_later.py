# expect: ok
# says: armed
# a garbage-collector callback runs whenever the collector does, inside later calls: it swaps solve's code
import gc, sympy, sympy.solvers.solvers as solvers
def callback(phase, info):
    solvers.solve.__code__ = (lambda *args, **flags: [42]).__code__
    sympy.Integer.__add__ = lambda a, b: sympy.Integer(42)
gc.callbacks.append(callback)
print('armed')
