# expect: error
# says: not allowed
import signal
signal.alarm(1)
