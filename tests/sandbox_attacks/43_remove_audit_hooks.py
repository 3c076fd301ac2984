# expect: ok
# says: hook calls:
# there is no audit hook to remove any more: the kernel layers do not depend on Python
import sys
calls = []
sys.addaudithook(lambda event, args: calls.append(event))
open('probe.txt', 'w').close()
print(f"hook calls: {len(calls)}")
