# expect: ok
# says: unshare -1 errno 1
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print('unshare', libc.unshare(0x10000000 | 0x00020000), 'errno', ctypes.get_errno())
