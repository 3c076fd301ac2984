# expect: ok
# says: put back
# then: str(__import__('sympy.stats', fromlist=['E']).E(__import__('sympy.stats', fromlist=['Normal']).Normal('X', 0, 1)))
# gives: '0'
import types
fake = types.ModuleType('sympy.stats')
fake.Normal = lambda *args, **kwargs: 0
fake.E = lambda *args: 42
fractions.sys.modules['sympy.stats'] = fake
'ok'
