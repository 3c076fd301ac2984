# expect: timeout|ok
# says: killed|processes running
# a thread that prints without pause starves the session's main thread of the GIL (CPython's convoy effect:
# every write releases and at once retakes it). On an idle machine the session then cannot even send its
# reply and the parent's hard kill (or RLIMIT_CPU) ends it: timeout. On a loaded one the main thread may
# win the GIL back in time, reply, and have its process stopped for the leftover thread: ok. Both contain it.
import threading
def spam():
    while True:
        print('late output')
threading.Thread(target=spam, daemon=True).start()
