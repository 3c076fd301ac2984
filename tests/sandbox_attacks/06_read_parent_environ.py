# expect: error
# says: not allowed
# never: SANDBOX_CANARY
import os
print(open(f'/proc/{os.getppid()}/environ', 'rb').read())
