# expect: error
# says: not allowed
import ctypes
ctypes.string_at(0)
