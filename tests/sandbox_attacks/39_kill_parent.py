# expect: ok
# says: no output
# getppid() is 0 inside the PID namespace: os.kill(0, ...) signals its own group, whose PID 1 ignores it
import os, signal
os.kill(os.getppid(), signal.SIGKILL)
