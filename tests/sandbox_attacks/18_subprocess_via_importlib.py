# expect: error
# says: Operation not permitted
# never: uid=
import importlib
importlib.import_module('subprocess').run(['id'])
