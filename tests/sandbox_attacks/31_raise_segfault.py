# expect: ok
# says: no output
# the session process is PID 1 of its namespace: a signal it sends itself without a handler is ignored
import signal
signal.raise_signal(signal.SIGSEGV)
