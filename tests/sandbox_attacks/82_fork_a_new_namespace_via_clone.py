# expect: ok
# says: clone -1 errno 1
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print('clone', libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0), 'errno', ctypes.get_errno())
