# expect: error
# says: not allowed
import signal
signal.signal(signal.SIGALRM, signal.SIG_IGN)
while True:
    pass
