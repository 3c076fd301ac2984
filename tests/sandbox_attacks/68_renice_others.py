# expect: ok
# says: user EPERM; group EPERM
import os
out = []
for name, which in (('user', os.PRIO_USER), ('group', os.PRIO_PGRP)):
    try:
        os.setpriority(which, 0, 19)
        out.append(f'{name} changed')
    except OSError as exc:
        out.append(f'{name} EPERM' if exc.errno == 1 else f'{name} {exc}')
print('; '.join(out))
