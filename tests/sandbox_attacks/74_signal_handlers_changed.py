# expect: ok
# says: handlers set
import signal
signal.signal(signal.SIGALRM, lambda *a: None)
signal.signal(signal.SIGXCPU, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print('handlers set')
