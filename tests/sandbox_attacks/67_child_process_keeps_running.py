# expect: ok
# says: threads or processes running
import os, time
pid = os.fork()
if pid == 0:
    while True:
        time.sleep(0.01)
print('child', pid)
