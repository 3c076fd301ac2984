# expect: ok
# says: 7
# /tmp is the session's own tmpfs scratch: the write lands there, not in the host's /tmp
import os
fd = os.open('/tmp/tool_sandbox_escape.txt', os.O_WRONLY | os.O_CREAT)
os.write(fd, b'escaped')
