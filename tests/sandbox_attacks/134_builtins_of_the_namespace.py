# expect: ok
import builtins, types
real_import = builtins.__import__
fake = types.ModuleType('sympy')
fake.__dict__.update(vars(sympy))
fake.solve = lambda *args, **kwargs: [42]
def fake_import(name, *args, **kwargs):
    return fake if name == 'sympy' else real_import(name, *args, **kwargs)
__builtins__ = dict(vars(builtins), __import__=fake_import)
'ok'
