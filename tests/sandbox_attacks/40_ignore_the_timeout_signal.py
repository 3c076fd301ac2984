# expect: timeout
# says: longer than
# with the soft timeout off, the CPU budget (SIGXCPU) or the parent's hard kill ends the call
import signal
signal.signal(signal.SIGALRM, signal.SIG_IGN)
while True:
    pass
