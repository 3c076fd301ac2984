# expect: ok
# allowed: every object in this process belongs to this session
import gc
len(gc.get_objects())
