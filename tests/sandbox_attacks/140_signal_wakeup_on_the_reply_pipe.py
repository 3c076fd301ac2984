# expect: ok
# says: put back
# then: __import__('signal').set_wakeup_fd(-1)
# gives: -1
import os, stat, signal, fcntl
writers = []
for fd in range(3, 256):
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        continue
    if stat.S_ISFIFO(mode) and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
        writers.append(fd)
os.set_blocking(writers[-1], False)
signal.set_wakeup_fd(writers[-1])
'ok'
