# expect: timeout
# says: killed
# the soft timeout is off, so the parent's hard kill ends the session
import signal
signal.signal(signal.SIGALRM, signal.SIG_IGN)
while True:
    pass
