# expect: ok
# says: shmget -1 EPERM msgget -1 EPERM semget -1 EPERM mq_open -1 EPERM
# under seccomp the sessions share the zygote's empty IPC namespace: no SysV IPC object and no POSIX message
# queue can be made in it, so no session can leave one there for another (x86_64 syscall numbers)
import ctypes
import errno
libc = ctypes.CDLL(None, use_errno=True)
made = []
for name, number, args in (("shmget", 29, (0, 4096, 0o1666)), ("msgget", 68, (0, 0o1666)),
                           ("semget", 64, (0, 1, 0o1666)), ("mq_open", 240, (b"/q", 0o102, 0o666, None))):
    made.append(f"{name} {libc.syscall(number, *args)} {errno.errorcode[ctypes.get_errno()]}")
print(" ".join(made))
