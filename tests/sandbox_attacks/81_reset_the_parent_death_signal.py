# expect: ok
# says: prctl -1 errno 1
# with PR_SET_PDEATHSIG cleared the session would outlive the leader the parent kills; seccomp refuses it
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print('prctl', libc.prctl(1, 0, 0, 0, 0), 'errno', ctypes.get_errno())
