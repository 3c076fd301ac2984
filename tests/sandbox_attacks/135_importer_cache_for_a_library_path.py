# expect: ok
# says: put back
# then: str(__import__('sympy.stats', fromlist=['E']).E(__import__('sympy.stats', fromlist=['Normal']).Normal('X', 0, 1)))
# gives: '0'
class Refuse:
    def find_spec(self, name, target=None):
        raise ImportError('poisoned ' + name)
    def invalidate_caches(self):
        pass
for path in list(sympy.__path__):
    fractions.sys.path_importer_cache[path] = Refuse()
'ok'
