# expect: error
# says: No such file or directory
# never: SANDBOX_CANARY
import os
print(open(f'/proc/{os.getppid()}/environ', 'rb').read())
