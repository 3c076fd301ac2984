# expect: ok
# says: still here
import os, signal
try:
    os.kill(-1, signal.SIGKILL)
except OSError:
    pass
os.killpg(0, signal.SIGTERM)
print('still here')
