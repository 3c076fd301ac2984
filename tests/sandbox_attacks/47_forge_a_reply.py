# expect: killed
# says: stopped
import os
for fd in range(3, 4096):
    try:
        os.write(fd, b'\x00\x00\x00\x02{}')
    except OSError:
        pass
while True:
    pass
