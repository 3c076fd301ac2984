# expect: error
# says: not allowed
import gc
len(gc.get_objects())
