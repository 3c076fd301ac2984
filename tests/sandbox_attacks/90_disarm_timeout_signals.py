# expect: ok
# says: SIGALRM
# ignore the signals the session's time limits use and block them; later calls must still be stoppable
import signal
signal.signal(signal.SIGALRM, signal.SIG_IGN)
signal.signal(signal.SIGXCPU, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGXCPU})
signal.setitimer(signal.ITIMER_PROF, 0.3)
signal.setitimer(signal.ITIMER_VIRTUAL, 0.3)
print('disarmed')
