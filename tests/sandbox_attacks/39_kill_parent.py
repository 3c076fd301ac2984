# expect: error
# says: not allowed
import os, signal
os.kill(os.getppid(), signal.SIGKILL)
