# expect: ok
# says: replaced
# never: pwned
# builtins belong to the interpreter, not to the session: a call that replaces print, repr or __import__ (or
# deletes a builtin, or adds one) gets them put back after it, so the next call's imports and result are its own
import builtins
print('replaced')
builtins.repr = lambda value: 'pwned'
builtins.__import__ = lambda *args, **kwargs: None
builtins.print = lambda *args, **kwargs: None
del builtins.len
builtins.extra_name = 'pwned'
