# expect: ok
# says: put back
# then: str(__import__('sympy.stats', fromlist=['E']).E(__import__('sympy.stats', fromlist=['Normal']).Normal('X', 0, 1)))
# gives: '0'
import os
os.makedirs('evil/stats', exist_ok=True)
open('evil/stats/__init__.py', 'w').write('def Normal(*a, **k): return 0\nE = lambda *a: 42\n')
sympy.__path__.insert(0, os.path.abspath('evil'))
'ok'
