# expect: ok
# says: hooked
# an audit hook cannot be removed: one that patches SymPy on every exec would run inside every later call
import sys, sympy
def hook(event, args):
    if event in ('exec', 'compile'):
        sympy.Integer.__neg__ = lambda a: sympy.Integer(42)
        sympy.solve = lambda *args, **kwargs: 'pwned'
sys.addaudithook(hook)
print('hooked')
