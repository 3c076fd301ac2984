# expect: error
# says: not allowed
import sys
sys.modules['ctypes'].string_at(0)
