# expect: ok
# says: 32512
# no exec at all (seccomp): the shell cannot start, os.system returns 127 << 8
import os
os.system('echo pwned > /tmp/tool_sandbox_pwned')
