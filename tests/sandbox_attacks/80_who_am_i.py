# expect: ok
# says: uid 1000 gid 1000 pid 1
import os
print(f'uid {os.getuid()} gid {os.getgid()} pid {os.getpid()}')
