# expect: killed
# says: a crash
# the session process is PID 1 of its namespace: SIGABRT from itself is ignored, glibc then faults
import os
os.abort()
