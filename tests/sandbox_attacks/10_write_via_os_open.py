# expect: ok|error
# says: 7|Read-only file system
# /tmp is the session's own tmpfs scratch: the write lands there, not in the host's /tmp (where the Python
# installation itself lives under /tmp, the scratch moves elsewhere and /tmp is the read-only root's)
import os
fd = os.open('/tmp/tool_sandbox_escape.txt', os.O_WRONLY | os.O_CREAT)
os.write(fd, b'escaped')
