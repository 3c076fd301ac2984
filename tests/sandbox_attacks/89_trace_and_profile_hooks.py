# expect: ok
# says: trace function
# hooks that would run inside every later call (and here make its result wrong)
import sys, threading
def tracer(frame, event, arg):
    if event == 'return' and frame.f_code.co_name == 'solve':
        frame.f_back.f_locals['poisoned'] = True
    return tracer
sys.settrace(tracer)
sys.setprofile(lambda frame, event, arg: None)
threading.settrace(tracer)
print('hooked')
