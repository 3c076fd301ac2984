# expect: ok
# says: put back
import string
module_dict = string.Formatter().get_field('0.__dict__', [sympy], {})[0]
module_dict['solve'] = lambda *args, **kwargs: [42]
'ok'
