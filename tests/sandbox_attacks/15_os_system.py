# expect: error
# says: not allowed
import os
os.system('echo pwned > /tmp/tool_sandbox_pwned')
