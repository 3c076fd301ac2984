# expect: error
# says: not allowed
import os
fd = os.open('/tmp/tool_sandbox_escape.txt', os.O_WRONLY | os.O_CREAT)
os.write(fd, b'escaped')
