# expect: ok
# says: put back
# then: len(__import__('sympy.stats', fromlist=['Normal']).Normal.__name__)
# gives: 6
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.startswith('sympy.stats'):
            raise ImportError('poisoned')
fractions.sys.meta_path.insert(0, Refuse())
'ok'
