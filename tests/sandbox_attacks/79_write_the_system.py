# expect: error
# says: Read-only file system
open('/usr/lib/tool_sandbox_escape.txt', 'w').write('escaped')
