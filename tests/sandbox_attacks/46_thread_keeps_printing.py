# expect: timeout
# says: killed
# a thread that prints without pause starves the worker's main thread of the GIL (CPython's convoy effect:
# every write releases and at once retakes it), so the worker cannot even send its reply; the parent's
# hard kill (or RLIMIT_CPU, whichever comes first) must end it
import threading
def spam():
    while True:
        print('late output')
threading.Thread(target=spam, daemon=True).start()
