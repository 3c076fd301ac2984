# expect: killed
# says: SIGSEGV
import signal
signal.raise_signal(signal.SIGSEGV)
