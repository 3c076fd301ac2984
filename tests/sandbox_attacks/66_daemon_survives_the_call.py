# expect: ok
# says: threads or processes running
# double fork: the grandchild is orphaned inside the session's PID namespace and would outlive the call
import os, time
if os.fork() == 0:
    if os.fork() == 0:
        time.sleep(3600)
    os._exit(0)
os.wait()
print('daemon started')
