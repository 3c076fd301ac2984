# expect: timeout
# says: longer than
import time
time.sleep(3600)
