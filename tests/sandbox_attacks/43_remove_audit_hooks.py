# expect: ok
# says: hook calls: 0
# CPython silently refuses the new hook when an existing one objects, so the sandbox's hook stays alone
import sys
calls = []
sys.addaudithook(lambda event, args: calls.append(event))
open('probe.txt', 'w').close()
print(f"hook calls: {len(calls)}")
