# expect: error
# says: not a valid result
# a forged frame is validated like any reply: an error result for this call, never an exception
import os
for fd in range(3, 4096):
    try:
        os.write(fd, b'\x00\x00\x00\x02{}')
    except OSError:
        pass
while True:
    pass
