# expect: ok
# says: tracing
import sys, threading
calls = []
sys.setprofile(lambda frame, event, arg: calls.append(event) if len(calls) < 10 else None)
sys.settrace(lambda frame, event, arg: None)
threading.setprofile(lambda *a: None)
print('tracing')
