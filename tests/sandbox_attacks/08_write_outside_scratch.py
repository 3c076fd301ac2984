# expect: ok
# says: 7
# /tmp is the session's own tmpfs scratch: the write lands there, not in the host's /tmp
open('/tmp/tool_sandbox_escape.txt', 'w').write('escaped')
