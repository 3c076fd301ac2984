# expect: error
# says: not allowed
open('/tmp/tool_sandbox_escape.txt', 'w').write('escaped')
