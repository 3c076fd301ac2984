# expect: ok
# says: affinity refused; prlimit refused
import os, resource
out = []
try:
    os.sched_setaffinity(1, {0})
    out.append('affinity changed')
except OSError:
    out.append('affinity refused')
try:
    resource.prlimit(1, resource.RLIMIT_NOFILE, (8, 8))
    out.append('prlimit changed')
except OSError:
    out.append('prlimit refused')
print('; '.join(out))
