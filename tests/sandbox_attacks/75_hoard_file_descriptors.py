# expect: error
# says: Too many open files
import os
hoard = []
while True:
    hoard.append(os.open('/dev/null', os.O_RDONLY))
