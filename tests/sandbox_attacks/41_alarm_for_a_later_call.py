# expect: ok
# says: 1
# every call re-arms and then clears the timer, so an alarm left for a later call never fires
import signal
signal.alarm(1)
