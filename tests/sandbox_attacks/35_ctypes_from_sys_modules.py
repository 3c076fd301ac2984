# expect: killed
# says: SIGSEGV
import sys
sys.modules['ctypes'].string_at(0)
