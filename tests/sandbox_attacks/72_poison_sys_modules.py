# expect: ok
# says: sys.modules['sympy']
import sys, types
fake = types.ModuleType('sympy')
fake.solve = lambda *args, **kwargs: 'poisoned'
fake.symbols = lambda *args, **kwargs: 'poisoned'
sys.modules['sympy'] = fake
globals()['solve'] = fake.solve
print('poisoned')
