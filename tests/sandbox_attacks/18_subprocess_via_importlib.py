# expect: error
# says: not allowed
import importlib
importlib.import_module('subprocess').run(['id'])
