# expect: ok
# says: {}
# never: SANDBOX_CANARY
import os
print({k: v for k, v in os.environ.items() if 'KEY' in k or 'TOKEN' in k or 'SECRET' in k})
