# expect: ok
# says: mount -1 chroot -1 pivot -1
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
m = libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)
c = libc.chroot(b'/tmp')
p = libc.syscall(155, b'/tmp', b'/tmp')
print('mount', m, 'chroot', c, 'pivot', p)
